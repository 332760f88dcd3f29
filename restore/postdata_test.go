package restore

import (
	"strings"
	"testing"
)

// TestKeyAsIndex: a plain primary key or unique constraint of a big table becomes the build
// of its unique index (which may share the table with the other index builds) and then the
// ADD CONSTRAINT … USING INDEX of the same name, with the session settings pg_restore
// printed before it; any key in another form (deferrable, INCLUDE, storage options, NULLS NOT
// DISTINCT), a key whose index a partitioned index attaches, and other entries stay one item.
func TestKeyAsIndex(t *testing.T) {
	script := `SET statement_timeout = 0;

--
-- Name: datavalue datavalue_pkey; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public.datavalue
    ADD CONSTRAINT datavalue_pkey PRIMARY KEY (dataelementid, periodid, sourceid);

SET default_tablespace = '';

--
-- Name: Odd.Name odd_uk; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public."Odd.Name"
    ADD CONSTRAINT "Odd uk" UNIQUE ("Ref", v);


--
-- Name: t t_def; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_def UNIQUE (a) DEFERRABLE;


--
-- Name: t t_incl; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_incl PRIMARY KEY (a) INCLUDE (b);


--
-- Name: t t_nnd; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_nnd UNIQUE NULLS NOT DISTINCT (b);


--
-- Name: part_2026 part_2026_pkey; Type: CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE ONLY public.part_2026
    ADD CONSTRAINT part_2026_pkey PRIMARY KEY (id, at);


--
-- Name: t t_check; Type: CHECK CONSTRAINT; Schema: public; Owner: dhis
--

ALTER TABLE public.t
    ADD CONSTRAINT t_check CHECK ((a > 0));


--
-- Name: part_2026_pkey; Type: INDEX ATTACH; Schema: public; Owner: dhis
--

ALTER INDEX public.part_pkey ATTACH PARTITION public.part_2026_pkey;

`
	_, items := parsePostData(script)
	if len(items) != 8 {
		t.Fatalf("parsed %d items, want 8", len(items))
	}
	attached := attachedIndexes(items)
	if !attached["part_2026_pkey"] || len(attached) != 1 {
		t.Fatalf("attached indexes: %v", attached)
	}
	split := keyAsIndex(items[0], attached)
	if len(split) != 2 {
		t.Fatalf("datavalue_pkey: %d items, want 2", len(split))
	}
	build, add := split[0], split[1]
	if build.what() != "building index datavalue_pkey on table public.datavalue" || add.what() != "building constraint datavalue_pkey on table public.datavalue" {
		t.Errorf("named %q and %q", build.what(), add.what())
	}
	if build.kind != "INDEX" || !build.shared || build.table != "public.datavalue" ||
		strings.TrimSpace(build.sql) != "CREATE UNIQUE INDEX datavalue_pkey ON public.datavalue USING btree (dataelementid, periodid, sourceid);" {
		t.Errorf("index build: %+v", build)
	}
	if add.kind != "CONSTRAINT" || add.shared || add.table != "public.datavalue" ||
		strings.TrimSpace(add.sql) != "ALTER TABLE ONLY public.datavalue ADD CONSTRAINT datavalue_pkey PRIMARY KEY USING INDEX datavalue_pkey;" {
		t.Errorf("constraint: %+v", add)
	}
	split = keyAsIndex(items[1], attached)
	if len(split) != 2 {
		t.Fatalf("quoted unique key: %d items, want 2", len(split))
	}
	for _, it := range split {
		if !strings.HasPrefix(it.sql, "\nSET default_tablespace = '';\n") {
			t.Errorf("%s: the settings printed before the entry are lost: %q", it.kind, it.sql)
		}
	}
	if got := strings.TrimSpace(strings.TrimPrefix(split[0].sql, split[0].carry)); got != `CREATE UNIQUE INDEX "Odd uk" ON public."Odd.Name" USING btree ("Ref", v);` {
		t.Errorf("quoted unique key's index: %s", got)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(split[1].sql, split[1].carry)); got != `ALTER TABLE ONLY public."Odd.Name" ADD CONSTRAINT "Odd uk" UNIQUE USING INDEX "Odd uk";` {
		t.Errorf("quoted unique key's constraint: %s", got)
	}
	for _, it := range items[2:] {
		if got := keyAsIndex(it, attached); len(got) != 1 || got[0] != it {
			t.Errorf("%s (%s) was split: %+v", it.name, it.kind, got)
		}
	}
}

// TestPickOrder: the builder takes the free item that holds back the most work first. A
// small referenced table's key goes before a mid-size table's index (datavalue's foreign
// keys wait for it), datavalue's foreign keys before an index nothing waits for, the order
// of the archive among equals; a foreign key whose table still has builds pending, or an
// item whose table another item holds alone, is passed over.
func TestPickOrder(t *testing.T) {
	dv, per, enr, ev := "public.datavalue", "public.period", "public.enrollment", "public.event"
	fk1 := &postItem{name: "datavalue fk_dv_period", kind: "FK CONSTRAINT", table: dv, refs: []string{per}}
	fk2 := &postItem{name: "datavalue fk_dv_self", kind: "FK CONSTRAINT", table: dv, refs: []string{dv}}
	perKey := &postItem{name: "period period_pkey", kind: "CONSTRAINT", table: per}
	enrIdx := &postItem{name: "in_enrollment_a", kind: "INDEX", table: enr, shared: true}
	enrIdx2 := &postItem{name: "in_enrollment_b", kind: "INDEX", table: enr, shared: true}
	evIdx := &postItem{name: "in_event_a", kind: "INDEX", table: ev, shared: true}
	dvIdx := &postItem{name: "in_datavalue_a", kind: "INDEX", table: dv, shared: true}
	noTable := &postItem{name: "x", kind: "TRIGGER"}
	all := []*postItem{fk1, fk2, perKey, enrIdx, enrIdx2, evIdx, dvIdx, noTable}
	weigh(all, map[string]int64{dv: 300, per: 1, enr: 50, ev: 100})
	for _, c := range []struct {
		it   *postItem
		want int64
	}{{fk1, 900}, {fk2, 900}, {dvIdx, 900}, {perKey, 301}, {evIdx, 100}, {enrIdx, 50}, {noTable, 0}} {
		if c.it.weight != c.want {
			t.Errorf("%s weighs %d, want %d", c.it.name, c.it.weight, c.want)
		}
	}
	b := &postBuilder{held: map[string]int{}, pending: map[string]int{dv: 1}}
	b.ready = []*postItem{enrIdx, evIdx, perKey, fk1, enrIdx2}
	var got []string
	take := func() *postItem {
		it := b.pick()
		if it != nil {
			got = append(got, it.name)
		}
		return it
	}
	take() // period's key: datavalue's foreign key waits for its index
	b.held[per] = 0
	take() // event's index (heavier than enrollment's)
	b.pending[dv] = 0
	take() // now datavalue's foreign key, which holds datavalue and period alone
	b.ready = append(b.ready, perKey)
	take() // enrollment's first index: period is held
	take() // enrollment's second index beside it (shared)
	if it := take(); it != nil {
		t.Errorf("took %s while period is held alone", it.name)
	}
	want := []string{"period period_pkey", "in_event_a", "datavalue fk_dv_period", "in_enrollment_a", "in_enrollment_b"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("picked %v, want %v", got, want)
	}
}
