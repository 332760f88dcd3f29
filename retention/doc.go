// Package retention turns a GFS policy into a plan (keep / archive-then-forget / forget, with
// the rules that decided) over whole snapshot sets, applies it resumably, and writes archives.
package retention
