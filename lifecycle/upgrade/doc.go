// Package upgrade owns the blue-green PostgreSQL major upgrade: preflight and plan, and the
// state machine (one catalogue record per upgrade, each step idempotent) with resume, rollback and finalize.
package upgrade
