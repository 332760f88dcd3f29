// Package clidoc renders a urfave/cli application's own definitions as man pages (roff) and
// bash/zsh completion scripts, so the installed documentation never drifts from --help.
package clidoc
