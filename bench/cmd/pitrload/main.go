// Command pitrload is the steady write load of the data-at-risk benchmark: it inserts one row
// stamped with clock_timestamp() every -every into pitr_bench, and after each commit rewrites
// -last with the row's stamp (RFC 3339), until -for has passed or the server dies.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	dsn := flag.String("dsn", "", "database DSN")
	every := flag.Duration("every", 100*time.Millisecond, "interval between inserts")
	dur := flag.Duration("for", time.Hour, "stop after this long")
	last := flag.String("last", "", "file receiving the stamp of the last committed row")
	flag.Parse()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pitrload:", err)
		os.Exit(1)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pitr_bench (id bigserial PRIMARY KEY, at timestamptz NOT NULL, payload text)`); err != nil {
		fmt.Fprintln(os.Stderr, "pitrload:", err)
		os.Exit(1)
	}
	end := time.Now().Add(*dur)
	n := 0
	for time.Now().Before(end) {
		var at time.Time
		err := conn.QueryRow(ctx, `INSERT INTO pitr_bench (at, payload) VALUES (clock_timestamp(), repeat('x', 200)) RETURNING at`).Scan(&at)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pitrload: stopped after %d rows: %v\n", n, err)
			return
		}
		n++
		tmp := *last + ".tmp"
		if err := os.WriteFile(tmp, []byte(at.UTC().Format("2006-01-02T15:04:05.000000Z07:00")+"\n"), 0o644); err == nil {
			_ = os.Rename(tmp, *last)
		}
		time.Sleep(*every)
	}
	fmt.Fprintf(os.Stderr, "pitrload: %d rows\n", n)
}
