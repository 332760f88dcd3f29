package config

// Example returns a fully commented configuration: every key with what it does and its
// default. It parses and validates as is (repository in a local directory, one instance
// "hmis"); `dhis2-life config example` prints it.
func Example() string { return example }

const example = `# dhis2-life configuration (TOML).
#
# Read from /etc/dhis2-life/dhis2-life.toml, or the file named by --config FILE or by the
# DHIS2_LIFE_CONFIG environment variable. Relative paths are resolved against the directory
# of this file. Secrets never go in this file: keys ending in _file name files of mode 0600
# (or stricter) that hold them; ` + "`dhis2-life init`" + ` checks every one.
# Durations are Go durations plus a "d" (day) unit: "90s", "36h", "7d", "1d12h".
# Schedules are cron specs: 5 fields ("0 2 * * *") or a descriptor ("@daily", "@every 6h").

# Catalogue (catalog.db), locks and temporary files. Default: "/var/lib/dhis2-life".
state_dir = "/var/lib/dhis2-life"

# The restic repository that holds every snapshot set. It is the truth: with this file, the
# repository password and (for S3) the credentials, a fresh host can list, restore and verify
# every snapshot (` + "`dhis2-life catalog rebuild`" + ` re-creates the local index).
[repository]
# Any restic repository URL; a local directory also works (on another disk than the
# database, please). Required.
url = "/var/backups/dhis2-life/repo"
# S3-compatible object storage (MinIO, AWS S3, Wasabi, ...) instead:
# url = "s3:http://127.0.0.1:9000/dhis2-backups/hmis"
# File holding the repository password, mode 0600 or stricter. Required. Without it no
# snapshot can be read: keep a copy off this host.
password_file = "/etc/dhis2-life/repository.pass"
# Optional file of KEY=VALUE lines passed to restic and the S3 client, e.g.
# AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...; mode 0600 or stricter.
# Default: none (S3 credentials are then taken from the environment).
# env_file = "/etc/dhis2-life/s3.env"
# The restic binary: a name looked up on PATH, or a path. Default: "restic".
# restic = "restic"
# Bound on every restic call that is not a backup or a restore. Default: "10m".
# timeout = "10m"
# How long the repository may fail every request restic retries before the running job (a
# backup or restore too) is stopped with a clear error. Default: "15m", restic's own limit.
# outage_timeout = "15m"

# One [instances.NAME] table per DHIS2 instance on this host. NAME appears in snapshot tags,
# metric labels and --instance flags: letters, digits, '-', '_' and '.'. --instance may be
# omitted when exactly one instance is configured.
[instances.hmis]
# PostgreSQL connection of the DHIS2 database (URL or key=value form) WITHOUT a password.
# Required. The password comes from database_password_file, ~/.pgpass or PGPASSFILE.
database = "postgres://dhis@127.0.0.1:5432/dhis2?sslmode=disable"
# Optional file holding the password of database; mode 0600 or stricter. Default: none.
# database_password_file = "/etc/dhis2-life/hmis-db.pass"
# DHIS2_HOME: holds dhis.conf and files/ (file resources, apps), both part of every snapshot
# set. Required.
dhis2_home = "/opt/dhis2"
# Optional superuser connection for CREATE/DROP DATABASE, extensions (postgis is not a
# trusted extension) and terminating sessions; also used for restore and clone targets on the
# same server. Default: the instance's own connection. Dumps never need it.
# admin_database = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
# Optional file holding the password of admin_database; mode 0600 or stricter.
# admin_password_file = "/etc/dhis2-life/postgres.pass"
# Directory of the PostgreSQL client programs (pg_dump) for this instance; pg_dump must not
# be older than the server. Default: /usr/lib/postgresql/MAJOR/bin for the server's major
# version, then PATH.
# pg_bin_dir = "/usr/lib/postgresql/15/bin"
# Leave out the data of DHIS2's audit tables (their definitions are kept). Default: false.
# exclude_audit = false
# Extra tables (shell glob patterns) whose data is not dumped; definitions are kept and the
# manifest lists them. Default: none (regenerable tables such as analytics are always left out).
# exclude_table_data = ["my_temp_*"]
# ` + "`dhis2-life status`" + ` reports a problem when the newest good snapshot is older than rpo,
# or the newest successful drill older than drill_max_age. Default: not checked.
rpo = "26h"
drill_max_age = "8d"

# How ` + "`dhis2-life upgrade postgres`" + ` controls the cluster. kind = "pgctl": data_dir + bin_dir
# (the new major's bin_dir is the same path with the version replaced); kind = "debian": a
# postgresql-common cluster, version + name as pg_lsclusters shows them. run_as is the OS user
# owning the cluster (default: the current user). The port comes from database. Default: none
# (upgrades refuse to run).
# [instances.hmis.cluster]
# kind = "pgctl"
# data_dir = "/var/lib/postgresql/13/main"
# bin_dir = "/usr/lib/postgresql/13/bin"
# run_as = "postgres"
# or, for kind = "debian":
# version = "13"
# name = "main"

# DHIS2 app hooks used around upgrades (run with sh -c); url + /api/system/ping is the health
# check. Default: none (upgrades refuse to run without stop and start).
# [instances.hmis.app]
# stop = "systemctl stop tomcat9"
# start = "systemctl start tomcat9"
# url = "http://127.0.0.1:8080"
# health_timeout = "2m"
# Blue-green DHIS2 upgrades (` + "`dhis2-life upgrade dhis2`" + `): the app above is the blue slot; the
# proxy in front is switched between the slots. proxy = "nginx": upstream_file is included in
# the site's upstream block, nginx is the command (-t and -s reload are appended); proxy =
# "hook": proxy_hook runs with DHIS2_LIFE_SLOT and DHIS2_LIFE_UPSTREAM (host:port). proxy_url is
# checked for the new version after the switch. Default: none (DHIS2 upgrades refuse to run).
# proxy = "nginx"
# upstream_file = "/etc/nginx/conf.d/dhis2-upstream.inc"
# nginx = "nginx"
# proxy_url = "https://hmis.example.org"
# A server (host:port) answering every request with a maintenance page: the proxy points
# there from blue's stop until green (or blue again) serves. Default: none.
# maintenance_upstream = "127.0.0.1:8099"
# proxy_hook = "ssh proxy /usr/local/bin/dhis2-upstream \"$DHIS2_LIFE_UPSTREAM\""
# The blue slot's DHIS2_HOME (default: the instance's dhis2_home) and log, whose tail failure
# reports show (default: none).
# dhis2_home = "/opt/dhis2"
# log_file = "/opt/dhis2/logs/dhis.log"
# The green slot: hooks get DHIS2_HOME, DHIS2_LIFE_WAR (the new WAR) and DHIS2_LIFE_SLOT.
# database defaults to the instance's database name + "_green" on the same server.
# [instances.hmis.app.green]
# stop = "systemctl stop tomcat9@green"
# start = "cp \"$DHIS2_LIFE_WAR\" /var/lib/tomcat9-green/webapps/ROOT.war && systemctl start tomcat9@green"
# url = "http://127.0.0.1:8081"
# dhis2_home = "/opt/dhis2-green"
# log_file = "/opt/dhis2-green/logs/dhis.log"
# health_timeout = "30m"

# What ` + "`dhis2-life upgrade os prepare|verify`" + ` captures and checks besides dhis.conf, PostgreSQL,
# nginx and cron configuration. Default: no services, no extra files.
# [instances.hmis.os]
# services = ["tomcat9", "nginx", "postgresql@15-main"]
# service_status = "systemctl is-active --quiet \"$DHIS2_LIFE_SERVICE\""
# service_unit = "systemctl cat \"$DHIS2_LIFE_SERVICE\""
# files = ["/etc/default/tomcat9"]

# Point-in-time recovery: continuous WAL archiving into the repository's bucket (S3 only),
# compressed and encrypted with a key derived from the repository password, plus base backups.
# ` + "`dhis2-life wal setup --instance hmis --apply`" + ` sets archive_mode/archive_command/archive_timeout.
# [instances.hmis.wal]
# Most seconds of WAL PostgreSQL keeps before switching to a new segment. Default: "60s".
# archive_timeout = "60s"
# ` + "`dhis2-life status`" + ` alerts (exit 3) when WAL waits longer than this. Default: "5m".
# wal_max_lag = "5m"
# Newest base backups kept by ` + "`dhis2-life wal prune`" + `; older WAL goes with them. Default: 2.
# keep_base_backups = 2
# OS user owning clusters restored by restore --pitr / verify --pitr. Default: "postgres" as root.
# run_as = "postgres"
# Where verify --pitr builds its scratch cluster (room for a whole cluster). Default: "/var/tmp".
# drill_dir = "/var/tmp"
# verify --pitr requires every row production stamped up to this long before the target to be
# restored (imports stamp rows when their transaction starts). Default: "1m".
# drill_margin = "1m"
# The dhis2-life executable archive_command and restore_command call. Default: this one.
# binary = "/usr/local/bin/dhis2-life"

# Optional per-instance retention; replaces [retention] as a whole for this instance.
# [instances.hmis.retention]
# keep_daily = 14

# Clone targets: staging or training copies of an instance, restored from a snapshot set and
# scrubbed. ` + "`dhis2-life clone --to staging`" + ` fills one, ` + "`dhis2-life clone destroy staging`" + ` drops it.
# [targets.staging]
# The instance it is cloned from. Required.
# instance = "hmis"
# The clone's database; never a production database. Required.
# database = "postgres://dhis@127.0.0.1:5432/dhis2_staging?sslmode=disable"
# Optional file (mode 0600) with the password of that role; also written as connection.password
# into the clone's dhis.conf. Default: ~/.pgpass, and dhis.conf keeps production's password
# only when the clone uses the same role.
# database_password_file = "/etc/dhis2-life/staging-db.pass"
# DHIS2_HOME of the clone, receiving files/. Default: none (database only).
# dhis2_home = "/opt/dhis2-staging"
# Scrub profile: "staging" or "training". Required.
# profile = "staging"
# Destroy the clone when it is older than this (see schedule.clone_ttl). Default: never.
# ttl = "14d"
# Server base URL written into the clone. Default: unchanged.
# base_url = "https://staging.example.org"
# Extra SQL run after the built-in scrub, in the same transaction: each entry is a statement, or
# the path of a .sql file (no spaces, ending in .sql, relative to this file). Default: none.
# scrub_sql = ["UPDATE systemsetting SET value = '\"STAGING\"' WHERE name = 'applicationTitle'"]
# Commands (argv, no shell) run before and after the swap, e.g. to stop and start the
# clone's DHIS2: before_hook runs once the new copy is restored, scrubbed and verified (and
# before ` + "`clone destroy`" + `), after_hook once it is in place. Output is logged. Default: none.
# before_hook = ["systemctl", "stop", "dhis2-staging"]
# after_hook = ["systemctl", "start", "dhis2-staging"]
# Bound on each hook. Default: "5m".
# hook_timeout = "5m"
# Training: accounts that stay usable, all with the password in keep_password_file
# (mode 0600 or stricter). Default: none.
# keep_accounts = ["admin"]
# keep_password_file = "/etc/dhis2-life/training.pass"
# Keep a restored, scrubbed template database (dhis2life_tpl_<target>_<set>) of the newest set
# cloned, so repeated clones of that set are a CREATE DATABASE … TEMPLATE copy instead of a full
# restore (costs the disk space of one more copy). Default: false.
# template = false
# Personal data: "pseudonymise" (tracked entity attribute values, event data values, usernames
# copied into data, messages, SMS, notes and people's files replaced; a scan of the whole copy
# proves none of production's identifying values is left) or "keep".
# Default: "pseudonymise" for training, "keep" for staging.
# pii = "pseudonymise"
# Attribute or data element uids left as they are (e.g. a free-text "village" attribute used
# in analytics), and uids pseudonymised whatever their value type. Default: none.
# pii_keep_attributes = ["w75KJ2mc4zz"]
# pii_extra_attributes = ["lZGmxYbs97q"]
# The app slot ` + "`dhis2-life upgrade dhis2 rehearse`" + ` starts the new WAR in, on this clone (hooks
# get DHIS2_HOME, DHIS2_LIFE_WAR and DHIS2_LIFE_SLOT; dhis2_home defaults to the target's).
# Default: none (no rehearsals).
# [targets.staging.app]
# stop = "systemctl stop tomcat9@staging"
# start = "cp \"$DHIS2_LIFE_WAR\" /var/lib/tomcat9-staging/webapps/ROOT.war && systemctl start tomcat9@staging"
# url = "http://127.0.0.1:8082"
# log_file = "/opt/dhis2-staging/logs/dhis.log"
# health_timeout = "30m"

# Retention (grandfather-father-son) for every instance; ` + "`dhis2-life retention plan`" + ` shows
# what it keeps, archives and forgets, with reasons. A set kept by any rule is kept.
# Default without this table: nothing is ever forgotten.
[retention]
# The newest N sets.
keep_last = 3
# The newest set of each of the last N days / weeks / months / years that have one.
keep_daily = 7
keep_weekly = 4
keep_monthly = 12
keep_yearly = 5
# Every set younger than this. Default: none.
# keep_within = "2d"
# Classes (last, daily, weekly, monthly, yearly, within) archived to [archive] before they may
# be forgotten; a set to archive is never forgotten until its archive is recorded.
# Needs [archive]. Default: none.
# archive = ["monthly", "yearly"]
# When to run restic prune (rewrites pack files; slow). Default: none (no scheduled prune).
# prune_schedule = "0 6 * * 0"

# Archive tier: self-contained, age-encrypted, object-locked copies of chosen sets in a
# separate bucket. Default without this table: no archives.
# [archive]
# S3 API host:port (no scheme). Required.
# endpoint = "127.0.0.1:9000"
# Use https. Default: false.
# secure = false
# Bucket (create it with object lock enabled if lock_mode is used). Required.
# bucket = "dhis2-archive"
# Object name prefix. Default: "".
# prefix = "hmis/"
# Bucket region. Default: the store's default.
# region = ""
# age public keys archives are encrypted to; the identities that decrypt them belong off this
# host. One of recipients or recipients_file (one key a line) is required.
# recipients = ["age1..."]
# recipients_file = "/etc/dhis2-life/archive.recipients"
# Object lock: "COMPLIANCE" or "GOVERNANCE" for lock_days days. Default: no object lock.
# lock_mode = "COMPLIANCE"
# lock_days = 365
# Storage class, e.g. "GLACIER", where the store has it. Default: the bucket's.
# storage_class = ""
# Multipart upload part size in MiB (bounds memory). Default: 16.
# part_size_mb = 16

# When ` + "`dhis2-life daemon`" + ` runs each job (times are local). An empty or absent spec means
# the job is not scheduled.
[schedule]
# Take a snapshot set of every instance.
snapshot = "0 2 * * *"
# Drill: restore the newest set into a scratch database and verify it.
verify = "0 4 * * 0"
# Apply retention (and archive what it says to archive).
retention = "30 5 * * *"
# Destroy clones past their ttl. Default: not scheduled.
# clone_ttl = "0 * * * *"
# Re-clone every target from the newest set. Default: not scheduled.
# clone_refresh = "0 3 * * 6"
# Base backup (pg_basebackup into the repository) of instances with [instances.NAME.wal].
# Default: not scheduled.
# base_backup = "0 1 * * 0"
# When a job would overlap another job of the same instance: "wait" or "skip". Default: "wait".
# overlap = "wait"

# ` + "`dhis2-life daemon`" + `.
[daemon]
# Prometheus metrics (/metrics) listen address. Default: none (no HTTP listener).
metrics_listen = "127.0.0.1:9469"
# Also write metrics for node_exporter's textfile collector into this directory. Default: none.
# textfile_dir = "/var/lib/prometheus/node-exporter"
# On SIGTERM, how long a running job may still take before it is cancelled. Default: "10m".
# stop_timeout = "10m"
# How often the daemon checks RPO and drill_max_age and alerts when exceeded. Default: "5m".
# check_interval = "5m"

# Alerts on failures, recoveries and stale snapshots or drills. Default without these tables:
# log only.
[notify]
# Minimum time between two alerts about the same problem. Default: "6h".
# interval = "6h"
# Failed deliveries are retried this often, waiting retry_backoff, then twice as long, ...
# Delivery never delays a backup job. Defaults: 4, "5s"; each attempt times out after timeout.
# retries = 4
# retry_backoff = "5s"
# timeout = "20s"

# Generic webhook: POSTs JSON {"event", "instance", "job", "message", ...}.
# [notify.webhook]
# url = "http://127.0.0.1:8080/hook"
# Or a file (mode 0600) holding the URL, when the URL carries a token.
# url_file = "/etc/dhis2-life/webhook.url"

# Slack incoming webhook (its URL is a secret: prefer url_file).
# [notify.slack]
# url_file = "/etc/dhis2-life/slack.url"
# url = "https://hooks.slack.com/services/..."

# Mail through a relay.
# [notify.smtp]
# host = "smtp.example.org"
# Default: 587 (465 with tls = "tls").
# port = 587
# from = "dhis2-life@example.org"
# to = ["ops@example.org"]
# Optional login; the password is in password_file (mode 0600 or stricter).
# username = "dhis2-life"
# password_file = "/etc/dhis2-life/smtp.pass"
# "none", "starttls" or "tls". Default: "starttls".
# tls = "starttls"

# Telegram bot.
# [notify.telegram]
# File (mode 0600) holding the bot token. Required.
# token_file = "/etc/dhis2-life/telegram.token"
# chat_id = "-1001234567890"
# Default: "https://api.telegram.org".
# api_url = "https://api.telegram.org"

# Performance knobs; the defaults are what ` + "`make bench`" + ` measured best.
[tuning]
# Restore parallelism (1-64): connections that load a table of 64 MiB or more at once, and
# connections that build indexes and constraints while the data loads. Default: 2.
# restore_jobs = 2
# Extra "table=col1,col2" dump ordering rules on top of the built-in DHIS2 ones; ordering
# large tables by period keeps day-to-day changes local, so deduplication works.
# ordered_tables = ["mytable=periodid,id"]
# restic --compression: "auto", "fastest", "better", "max" or "off". Default: "auto".
# Measured on a 433 MB DHIS2 stream (2 cores): auto 2.9 s, 71.5 MB; fastest 2.6 s, 74.2 MB;
# better 3.2 s, 66.6 MB; max 6.1 s, 61.9 MB; daily changes shrink in the same proportions.
# "better" suits slow uplinks or metered storage; "max" doubles the snapshot's CPU time.
# compression = "auto"
# restic --compression of a set taken when the catalogue already holds one of the instance
# (every set after the first). restic compresses only what it adds, so a daily set pays the
# stronger level on a few MB: measured on a daily DHIS2 set (27 MB of new chunks), max
# stored 15% less than auto (4.0 vs 4.7 MB) for +1 CPU-second. Default: "max" when
# compression is unset or "auto", else the value of compression.
# incremental_compression = "max"
# restic --pack-size in MiB. Default: restic's.
# pack_size_mb = 16
# Temporary disk (MiB) for loading two tables at once during a restore: when a second
# connection is idle, a table that fits is spooled to temp_dir and loaded there while the
# stream goes on (restore_jobs - 1 extra connections). Default 1024; -1 = one table at a time.
# restore_spool_mb = 1024
# Soft memory limit for restic processes in MiB (Go's GOMEMLIMIT). Default: 192; -1 = none.
# Measured on a 1 GiB DHIS2 stream (bench/README.md): restic peaks at 133-141 MB in backup and
# 157-169 MB in dump without a limit, so 192 never slows it and caps growth under 256 MB.
# restic_memory_limit_mb = 192
# Temporary files. Default: state_dir/tmp.
# temp_dir = "/var/lib/dhis2-life/tmp"
`
