// Command dhis2stub stands in for DHIS2 in tests, at the edges dhis2-life touches: it reads
// DHIS2_HOME/dhis.conf, applies a "WAR"'s Flyway migrations to the database and serves
// /api/system/ping and /api/system/info.
//
// A WAR is a zip holding WEB-INF/classes/build.properties (build.version=2.43.0) and
// migrations WEB-INF/classes/db/migration/V2_43_1__what.sql. On start every migration newer
// than the newest successful flyway_schema_history row runs in its own transaction and is
// recorded; a failing one is recorded with success = false and the stub exits 1 without ever
// answering, as DHIS2 does. A failed row already present stops the start the same way.
//
//	dhis2stub -home DIR -war FILE -listen 127.0.0.1:PORT [-delay 1s]
package main

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	home := flag.String("home", os.Getenv("DHIS2_HOME"), "DHIS2_HOME holding dhis.conf")
	war := flag.String("war", "", "the WAR (zip) to run")
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	delay := flag.Duration("delay", 0, "extra start-up time before serving")
	flag.Parse()
	log.SetPrefix("dhis2stub: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *home, *war, *listen, *delay); err != nil {
		log.Printf("ERROR %v", err)
		os.Exit(1)
	}
}

// War is what the stub reads from a WAR.
type War struct {
	Version    string
	Migrations []Migration
}

// Migration is one versioned SQL file.
type Migration struct {
	Version     string
	Description string
	Script      string
	SQL         string
}

func readWar(file string) (*War, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return nil, fmt.Errorf("opening WAR %s: %w", file, err)
	}
	defer z.Close()
	w := &War{}
	for _, f := range z.File {
		const mig = "WEB-INF/classes/db/migration/"
		switch {
		case f.Name == "WEB-INF/classes/build.properties":
			b, err := readZip(f)
			if err != nil {
				return nil, err
			}
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == "build.version" {
					w.Version = strings.TrimSpace(v)
				}
			}
		case strings.HasPrefix(f.Name, mig) && strings.HasSuffix(f.Name, ".sql"):
			base := path.Base(f.Name)
			v, desc, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(base, "V"), ".sql"), "__")
			if !ok || !strings.HasPrefix(base, "V") {
				return nil, fmt.Errorf("migration %s is not named V<version>__<description>.sql", base)
			}
			b, err := readZip(f)
			if err != nil {
				return nil, err
			}
			w.Migrations = append(w.Migrations, Migration{Version: strings.ReplaceAll(v, "_", "."), Description: strings.ReplaceAll(desc, "_", " "), Script: path.Join("db/migration", base), SQL: string(b)})
		}
	}
	if w.Version == "" {
		return nil, fmt.Errorf("WAR %s has no build.version in WEB-INF/classes/build.properties", file)
	}
	sort.Slice(w.Migrations, func(i, j int) bool { return less(w.Migrations[i].Version, w.Migrations[j].Version) })
	return w, nil
}

func readZip(f *zip.File) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// less compares dotted versions numerically.
func less(a, b string) bool {
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

// readConf reads the connection keys of dhis.conf.
func readConf(home string) (url, user, pass string, err error) {
	b, err := os.ReadFile(path.Join(home, "dhis.conf"))
	if err != nil {
		return "", "", "", fmt.Errorf("reading dhis.conf: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		switch strings.TrimSpace(k) {
		case "connection.url":
			url = strings.TrimSpace(v)
		case "connection.username":
			user = strings.TrimSpace(v)
		case "connection.password":
			pass = strings.TrimSpace(v)
		}
	}
	if url == "" {
		return "", "", "", errors.New("dhis.conf has no connection.url")
	}
	return url, user, pass, nil
}

// pgConfig turns jdbc:postgresql://host:port/db into a pgx config.
func pgConfig(jdbc, user, pass string) (*pgx.ConnConfig, error) {
	u := strings.TrimPrefix(jdbc, "jdbc:")
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("connection.url %q: %w", jdbc, err)
	}
	if user != "" {
		cfg.User = user
	}
	cfg.Password = pass
	return cfg, nil
}

func run(ctx context.Context, home, warFile, listen string, delay time.Duration) error {
	w, err := readWar(warFile)
	if err != nil {
		return err
	}
	log.Printf("starting DHIS2 %s (%d migrations in the WAR)", w.Version, len(w.Migrations))
	url, user, pass, err := readConf(home)
	if err != nil {
		return err
	}
	cfg, err := pgConfig(url, user, pass)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer conn.Close(context.Background())
	if err := migrate(ctx, conn, w); err != nil {
		return err
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/system/ping", func(rw http.ResponseWriter, r *http.Request) { fmt.Fprint(rw, "pong") })
	mux.HandleFunc("/api/ping", func(rw http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/api/system/info", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{"version": w.Version, "revision": "stub", "buildTime": time.Now().UTC().Format(time.RFC3339)})
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Printf("DHIS2 %s serving on %s", w.Version, listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Printf("stopped")
	return nil
}

// migrate runs the WAR's migrations newer than the database's newest successful one.
func migrate(ctx context.Context, conn *pgx.Conn, w *War) error {
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS flyway_schema_history (
  installed_rank integer PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL,
  type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer,
  installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
  execution_time integer NOT NULL, success boolean NOT NULL)`); err != nil {
		return fmt.Errorf("flyway_schema_history: %w", err)
	}
	var failed string
	err := conn.QueryRow(ctx, `SELECT version FROM flyway_schema_history WHERE NOT success ORDER BY installed_rank LIMIT 1`).Scan(&failed)
	if err == nil {
		return fmt.Errorf("flyway: validate failed: detected failed migration to version %s: repair the database first", failed)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT version FROM flyway_schema_history WHERE success AND version IS NOT NULL`)
	if err != nil {
		return err
	}
	current := ""
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		if current == "" || less(current, v) {
			current = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	applied := 0
	for _, m := range w.Migrations {
		if current != "" && !less(current, m.Version) {
			continue
		}
		t0 := time.Now()
		_, execErr := conn.Exec(ctx, "BEGIN;\n"+m.SQL+"\n;COMMIT;")
		if execErr != nil {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		ms := int(time.Since(t0).Milliseconds())
		if _, err := conn.Exec(ctx, `INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
SELECT coalesce(max(installed_rank), 0) + 1, $1, $2, 'SQL', $3, $4, current_user, $5, $6 FROM flyway_schema_history`,
			m.Version, m.Description, m.Script, int32(crc32.ChecksumIEEE([]byte(m.SQL))), ms, execErr == nil); err != nil {
			return fmt.Errorf("recording migration %s: %w", m.Version, err)
		}
		if execErr != nil {
			return fmt.Errorf("flyway: migration %s (%s) failed: %w", m.Script, m.Description, execErr)
		}
		applied++
		log.Printf("migration %s applied in %d ms", m.Version, ms)
	}
	log.Printf("flyway: %d migrations applied (schema was %s)", applied, current)
	return nil
}
