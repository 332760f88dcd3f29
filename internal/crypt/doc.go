// Package crypt encrypts and decrypts streams with age to configured recipients (public keys
// only on the host) and builds the escrow bundle (repository password + config) for recovery.
package crypt
