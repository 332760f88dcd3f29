package pitr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// DrillsBucket is the catalogue bucket of PITR drill reports (key: drill ID).
const DrillsBucket = "pitr-drills"

// Check is one check of a PITR drill.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// DrillReport is the result of `verify --pitr`.
type DrillReport struct {
	ID             string     `json:"id"`
	Instance       string     `json:"instance"`
	Target         time.Time  `json:"target"`
	Base           string     `json:"base_backup,omitempty"`
	Reached        *time.Time `json:"reached,omitempty"`
	OK             bool       `json:"ok"`
	Checks         []Check    `json:"checks"`
	RestoreSeconds float64    `json:"restore_seconds"`
	// RPOSeconds is the achieved recovery point: target minus the commit time of the last
	// transaction recovered (how much before the target was lost).
	RPOSeconds float64   `json:"rpo_seconds"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	ScratchDir string    `json:"scratch_dir,omitempty"`
}

// DrillOptions configure Drill.
type DrillOptions struct {
	Restore RestoreOptions // Target, Instance, Repo, Log, RestoreCommand; the rest is set by Drill
	// Production is the instance's database, compared with the restored one.
	Production pg.Conn
	Catalog    *catalog.Catalog
	// Margin: rows stamped up to Target-Margin must all be restored (default 1m: a row's stamp
	// precedes its commit by its transaction's duration).
	Margin      time.Duration
	KeepScratch bool
}

// stampColumns are DHIS2 columns that stamp rows with the time they were written; created-like
// ones (creation) never change afterwards.
var stampColumns = []struct {
	table, column string
	creation      bool
}{
	{"datavalue", "created", true}, {"datavalue", "lastupdated", false},
	{"audit", "createdat", true},
	{"trackerevent", "created", true}, {"trackerevent", "lastupdated", false},
	{"singleevent", "created", true}, {"singleevent", "lastupdated", false},
	{"event", "created", true}, {"event", "lastupdated", false},
	{"programstageinstance", "created", true}, {"programstageinstance", "lastupdated", false},
	{"enrollment", "created", true}, {"trackedentity", "created", true},
}

// Drill restores the instance to Target in a scratch cluster (sockets only, in a private
// directory), paused at the target, and checks that rows stamped up to the target are there
// and later ones are not; it records the report in the catalogue and removes the scratch cluster.
func Drill(ctx context.Context, o DrillOptions) (*DrillReport, error) {
	in := o.Restore.Instance
	if o.Margin == 0 {
		o.Margin = time.Minute
	}
	rep := &DrillReport{ID: time.Now().UTC().Format("20060102T150405.000Z") + "-pitr-" + in.Name, Instance: in.Name,
		Target: o.Restore.Target.UTC(), Start: time.Now().UTC()}
	owner, err := clusterOwner(in)
	if err != nil {
		return nil, err
	}
	parent := "/var/tmp"
	if in.WAL != nil && in.WAL.DrillDir != "" {
		parent = in.WAL.DrillDir
	}
	root, err := os.MkdirTemp(parent, "dhis2-life-pitr-drill-")
	if err != nil {
		return nil, fmt.Errorf("creating the drill's scratch directory in %s: %w", parent, err)
	}
	sock := filepath.Join(root, "s")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	for _, p := range []string{root, sock} {
		if err := owner.chown(p); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ro := o.Restore
	ro.DataDir, ro.Port, ro.Pause, ro.Scratch, ro.SocketDir = filepath.Join(root, "data"), port, true, true, sock
	major := 0
	defer func() {
		if o.KeepScratch {
			rep.ScratchDir = root
			return
		}
		if major > 0 {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := Stop(sctx, in, ro.DataDir, major); err != nil {
				ro.Log.Warn("stopping the drill cluster", "err", err)
			}
		}
		_ = os.RemoveAll(root)
	}()
	res, err := Restore(ctx, ro)
	if res != nil {
		rep.Base, rep.Reached = res.Base, res.Reached
		major = res.ServerMajor
	}
	var early *StoppedEarlyError
	switch {
	case errors.As(err, &early):
		rep.Checks = append(rep.Checks, Check{Name: "recovery", OK: false, Detail: err.Error()})
		if early.Reached != nil {
			rep.RPOSeconds = rep.Target.Sub(*early.Reached).Seconds()
		}
		return finish(o, rep)
	case err != nil:
		return nil, err
	}
	rep.RestoreSeconds = res.Seconds
	db := o.Production.Database()
	su := "postgres"
	if in.AdminDatabase != "" {
		if u := (pg.Conn{DSN: in.AdminDatabase}).User(); u != "" {
			su = u
		}
	}
	scratch, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", sock, port, su, db))
	if err != nil {
		return nil, fmt.Errorf("connecting to the drill cluster: %w", err)
	}
	defer scratch.Close(context.Background())
	prod, err := o.Production.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer prod.Close(context.Background())

	var replay *time.Time
	if err := scratch.QueryRow(ctx, `SELECT pg_last_xact_replay_timestamp()`).Scan(&replay); err != nil {
		return nil, fmt.Errorf("reading the replay position of the drill cluster: %w", err)
	}
	if replay != nil {
		rep.Reached = replay
		rep.RPOSeconds = rep.Target.Sub(*replay).Seconds()
	}
	okRec := replay != nil && !replay.After(rep.Target)
	detail := "no transaction replayed after the base backup"
	if replay != nil {
		detail = fmt.Sprintf("paused at the target; last transaction replayed committed %s (%.1fs before the target)", replay.UTC().Format(time.RFC3339Nano), rep.RPOSeconds)
	}
	rep.Checks = append(rep.Checks, Check{Name: "recovery", OK: okRec, Detail: detail})
	checked := 0
	for _, sc := range stampColumns {
		var exists bool
		if err := scratch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2)`, sc.table, sc.column).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		checked++
		col, tbl := pg.QuoteIdent(sc.column), pg.QuoteIdent(sc.table)
		var later int64
		if err := scratch.QueryRow(ctx, `SELECT count(*) FROM `+tbl+` WHERE `+col+` > $1::timestamptz::timestamp`, rep.Target).Scan(&later); err != nil {
			return nil, fmt.Errorf("checking %s.%s: %w", sc.table, sc.column, err)
		}
		rep.Checks = append(rep.Checks, Check{Name: "none after target " + sc.table + "." + sc.column, OK: later == 0,
			Detail: fmt.Sprintf("%d rows stamped after the target", later)})
		if !sc.creation {
			continue
		}
		cut := rep.Target.Add(-o.Margin)
		q := `SELECT count(*) FROM ` + tbl + ` WHERE ` + col + ` <= $1::timestamptz::timestamp`
		var inProd, inScratch int64
		if err := prod.QueryRow(ctx, q, cut).Scan(&inProd); err != nil {
			return nil, fmt.Errorf("counting %s.%s in production: %w", sc.table, sc.column, err)
		}
		if err := scratch.QueryRow(ctx, q, cut).Scan(&inScratch); err != nil {
			return nil, fmt.Errorf("counting %s.%s in the drill cluster: %w", sc.table, sc.column, err)
		}
		d := fmt.Sprintf("%d rows stamped up to %s restored, production has %d", inScratch, cut.UTC().Format(time.RFC3339), inProd)
		if inScratch > inProd {
			d += " (rows deleted in production since)"
		}
		rep.Checks = append(rep.Checks, Check{Name: "all up to target " + sc.table + "." + sc.column, OK: inScratch >= inProd, Detail: d})
	}
	if checked == 0 {
		rep.Checks = append(rep.Checks, Check{Name: "stamped tables", OK: false, Detail: "no DHIS2 table with a created/lastupdated column in database " + db})
	}
	return finish(o, rep)
}

func finish(o DrillOptions, rep *DrillReport) (*DrillReport, error) {
	rep.OK = len(rep.Checks) > 0
	for _, c := range rep.Checks {
		rep.OK = rep.OK && c.OK
	}
	rep.End = time.Now().UTC()
	if o.Catalog != nil {
		if err := o.Catalog.PutJSON(DrillsBucket, rep.ID, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}

// DrillSummary is the newest PITR drill of an instance, for `status`.
type DrillSummary struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Target     time.Time `json:"target"`
	OK         bool      `json:"ok"`
	RPOSeconds float64   `json:"rpo_seconds"`
	RestoreSec float64   `json:"restore_seconds"`
}

// LastDrill returns the newest recorded PITR drill of an instance (nil when none).
func LastDrill(cat *catalog.Catalog, instance string) (*DrillSummary, error) {
	var last *DrillSummary
	err := cat.ListJSON(DrillsBucket, func(_ string, raw []byte) error {
		var r DrillReport
		if json.Unmarshal(raw, &r) != nil || r.Instance != instance {
			return nil
		}
		if last == nil || r.End.After(last.Time) {
			last = &DrillSummary{ID: r.ID, Time: r.End, Target: r.Target, OK: r.OK, RPOSeconds: r.RPOSeconds, RestoreSec: r.RestoreSeconds}
		}
		return nil
	})
	return last, err
}
