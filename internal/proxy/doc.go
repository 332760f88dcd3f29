// Package proxy switches the reverse proxy in front of DHIS2 between app slots: a built-in
// nginx upstream writer (atomic include file, nginx -t, reload, previous file kept) or a hook.
package proxy
