// Package restic is a typed wrapper of the restic binary: it runs restic with --json, passes
// the password and S3 credentials through files and the environment (never argv), maps exit
// codes to errors and reports progress from restic's status lines.
package restic
