// Package clone restores a snapshot set into a staging or training target, scrubs it so it
// cannot act on the real world, proves the scrub, swaps it in by rename, and expires it.
package clone
