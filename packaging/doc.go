// Package packaging holds the Debian packaging (deb/: build script, maintainer scripts) and
// the test that builds, lints, installs, removes and purges the .deb on the test machine.
package packaging
