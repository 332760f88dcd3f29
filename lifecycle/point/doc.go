// Package point owns rollback points: a pinned snapshot set plus what is needed to return to
// it (cluster, config files, versions), recorded in the catalogue and in the repository.
package point
