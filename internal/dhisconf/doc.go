// Package dhisconf reads and writes DHIS2's dhis.conf (Java properties: key = value lines),
// preserving comments and order when it rewrites keys.
package dhisconf
