package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/dhis2-life/dhis2-life/internal/ui"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/retention"
)

// RetentionPlans prints `retention plan`; --json prints every item, oldest first per instance.
func RetentionPlans(w io.Writer, asJSON bool, plans []lifecycle.RetentionPlan) error {
	if asJSON {
		all := []retention.Item{}
		for _, p := range plans {
			all = append(all, p.Items...)
		}
		return JSON(w, all)
	}
	for _, p := range plans {
		cnt := retention.Count(p.Items)
		fmt.Fprintf(w, "instance %s: %s\n", p.Instance, policyString(p.Policy))
		if p.Resumed != "" {
			fmt.Fprintf(w, "  an interrupted apply of %s is pending: its archive duties are kept\n", p.Resumed)
		}
		t := ui.NewTable("SET", "TIME", "DECISION", "REASONS")
		for _, it := range p.Items {
			t.Row(it.ID, when(it.Time), it.Decision, strings.Join(it.Reasons, "; "))
		}
		if err := t.Write(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d keep, %d archive-then-forget, %d forget\n", cnt[retention.Keep], cnt[retention.ArchiveThenForget], cnt[retention.Forget])
		if p.Refusal != nil {
			fmt.Fprintf(w, "warning: apply would refuse: %v\n", p.Refusal)
		}
	}
	return nil
}

func policyString(p *retention.Policy) string {
	if p == nil {
		return "no [retention] policy: every set is kept"
	}
	var parts []string
	for _, f := range []struct {
		k string
		v int
	}{{"last", p.KeepLast}, {"daily", p.KeepDaily}, {"weekly", p.KeepWeekly}, {"monthly", p.KeepMonthly}, {"yearly", p.KeepYearly}} {
		if f.v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.k, f.v))
		}
	}
	if p.KeepWithin > 0 {
		parts = append(parts, "within "+ui.Duration(p.KeepWithin))
	}
	if len(parts) == 0 {
		parts = append(parts, "keeps nothing")
	}
	s := "keep " + strings.Join(parts, ", ")
	if len(p.Archive) > 0 {
		s += "; archive " + strings.Join(p.Archive, ", ") + " before forgetting"
	}
	return s
}

// RetentionApply prints `retention apply`.
func RetentionApply(w io.Writer, asJSON bool, results []*retention.Result) error {
	if asJSON {
		return JSON(w, results)
	}
	for _, r := range results {
		verb := ""
		if r.DryRun {
			verb = "would "
		}
		if r.Resumed != "" {
			fmt.Fprintf(w, "instance %s: resumed the interrupted run of %s\n", r.Instance, r.Resumed)
		}
		fmt.Fprintf(w, "instance %s: %skeep %d sets, %sarchive %d, %sforget %d", r.Instance, verb, r.Kept, verb, len(r.Archived), verb, len(r.Forgotten))
		if r.Pruned {
			fmt.Fprintf(w, ", %sprune the repository", verb)
		}
		fmt.Fprintln(w)
		for _, id := range r.Archived {
			fmt.Fprintf(w, "  %sarchived %s\n", verb, id)
		}
		for _, id := range r.Forgotten {
			fmt.Fprintf(w, "  %sforgot %s\n", verb, id)
		}
		if r.DryRun {
			fmt.Fprintln(w, "nothing was changed (--dry-run)")
		}
	}
	return nil
}

// Archive prints `archive`.
func Archive(w io.Writer, asJSON bool, o *lifecycle.ArchiveOutcome) error {
	res := o.ArchiveRecord
	switch {
	case o.Already:
		_, err := fmt.Fprintf(w, "set %s is already archived as %s (%s, sha256 %s)\n", res.ID, res.Object, ui.Bytes(res.Size), res.SHA256)
		return err
	case asJSON:
		return JSON(w, res)
	}
	until := "no object lock"
	if res.RetainUntil != nil {
		until = res.LockMode + " until " + res.RetainUntil.Format("2006-01-02")
	}
	_, err := fmt.Fprintf(w, "archived set %s as %s/%s: %s, sha256 %s, %s (confirmed by reading it back)\n",
		res.ID, res.Bucket, res.Object, ui.Bytes(res.Size), res.SHA256, until)
	return err
}

// Archives lists the recorded archives (`archives`).
func Archives(w io.Writer, asJSON bool, recs []retention.ArchiveRecord) error {
	if asJSON {
		return JSON(w, recs)
	}
	if len(recs) == 0 {
		fmt.Fprintln(w, "no archives recorded")
		return nil
	}
	t := ui.NewTable("SET", "INSTANCE", "OBJECT", "SIZE", "RETAIN UNTIL", "SHA256").RightAlign(3)
	for _, r := range recs {
		until := "-"
		if r.RetainUntil != nil {
			until = r.RetainUntil.Format("2006-01-02") + " " + r.LockMode
		}
		t.Row(r.ID, r.Instance, r.Bucket+"/"+r.Object, ui.Bytes(r.Size), until, r.SHA256[:16]+"…")
	}
	return t.Write(w)
}
