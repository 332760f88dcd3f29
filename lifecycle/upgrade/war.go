package upgrade

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// warLibVersion finds DHIS2's version in a jar name of WEB-INF/lib (dhis-api-2.41.2.jar).
var warLibVersion = regexp.MustCompile(`^WEB-INF/lib/dhis-(?:api|service-core)-(\d+\.\d+(?:\.\d+)*)(?:-[A-Za-z0-9.]+)?\.jar$`)

// WARVersion reads DHIS2's version from a WAR: build.version of
// WEB-INF/classes/build.properties, else the version in the name of the dhis-api jar.
func WARVersion(file string) (string, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return "", fmt.Errorf("opening WAR %s: %w", file, err)
	}
	defer z.Close()
	fromLib := ""
	for _, f := range z.File {
		if f.Name == "WEB-INF/classes/build.properties" {
			r, err := f.Open()
			if err != nil {
				return "", fmt.Errorf("reading %s in %s: %w", f.Name, file, err)
			}
			b, err := io.ReadAll(io.LimitReader(r, 1<<20))
			r.Close()
			if err != nil {
				return "", fmt.Errorf("reading %s in %s: %w", f.Name, file, err)
			}
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == "build.version" && strings.TrimSpace(v) != "" {
					return strings.TrimSpace(v), nil
				}
			}
		}
		if m := warLibVersion.FindStringSubmatch(f.Name); m != nil && fromLib == "" {
			fromLib = m[1]
		}
	}
	if fromLib != "" {
		return fromLib, nil
	}
	return "", fmt.Errorf("WAR %s names no DHIS2 version (no build.version in WEB-INF/classes/build.properties, no WEB-INF/lib/dhis-api-*.jar): is it a DHIS2 WAR?", path.Base(file))
}

// versionLess compares dotted versions numerically ("2.41.10" > "2.41.9"); a suffix after
// '-' is ignored.
func versionLess(a, b string) bool {
	a, _, _ = strings.Cut(a, "-")
	b, _, _ = strings.Cut(b, "-")
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// majorLine is "2.41" of "2.41.2" (or of flyway's "2.41.17").
func majorLine(v string) string {
	p := strings.Split(v, ".")
	if len(p) < 2 {
		return v
	}
	return p[0] + "." + p[1]
}

// needs returns the minimum Java and PostgreSQL majors DHIS2 version v needs (0 = unknown).
func needs(v string) (java, postgres int) {
	switch {
	case !versionLess(v, "2.41"):
		return 17, 13
	case !versionLess(v, "2.40"):
		return 11, 12
	case !versionLess(v, "2.35"):
		return 11, 10
	}
	return 8, 0
}
