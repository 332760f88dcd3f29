package main

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadWarOrdersMigrationsNumerically(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dhis.war")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	for name, body := range map[string]string{
		"WEB-INF/classes/build.properties":                  "build.version=2.41.3\n",
		"WEB-INF/classes/db/migration/V2_41_10__b.sql":      "SELECT 10;",
		"WEB-INF/classes/db/migration/V2_41_9__a_thing.sql": "SELECT 9;",
		"WEB-INF/classes/static/readme.txt":                 "not a migration",
	} {
		w, _ := z.Create(name)
		w.Write([]byte(body))
	}
	z.Close()
	f.Close()
	w, err := readWar(p)
	if err != nil {
		t.Fatal(err)
	}
	if w.Version != "2.41.3" || len(w.Migrations) != 2 || w.Migrations[0].Version != "2.41.9" || w.Migrations[1].Version != "2.41.10" || w.Migrations[0].Description != "a thing" {
		t.Fatalf("readWar = %+v", w)
	}
	if _, err := readWar(filepath.Join(t.TempDir(), "none.war")); err == nil || !strings.Contains(err.Error(), "none.war") {
		t.Fatalf("missing WAR: %v", err)
	}
}

func TestReadConf(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dhis.conf"), []byte("# c\nconnection.url = jdbc:postgresql://127.0.0.1:5432/dhis2\nconnection.username = dhis\nconnection.password = pw\n"), 0o600)
	url, user, pass, err := readConf(dir)
	if err != nil || url != "jdbc:postgresql://127.0.0.1:5432/dhis2" || user != "dhis" || pass != "pw" {
		t.Fatalf("readConf = %q %q %q %v", url, user, pass, err)
	}
	cfg, err := pgConfig(url, user, pass)
	if err != nil || cfg.Database != "dhis2" || cfg.Port != 5432 || cfg.User != "dhis" {
		t.Fatalf("pgConfig = %+v %v", cfg, err)
	}
}
