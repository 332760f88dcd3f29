// Package lifecycle is the use-case layer: one function per job (snapshot, verify, restore, clone,
// retention, archive, catalogue rebuild, escrow), each owning its lock, preflight, defaults, run record and alerts.
package lifecycle
