//go:build tools

package tools

import (
	_ "filippo.io/age"
	_ "github.com/BurntSushi/toml"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/robfig/cron/v3"
	_ "github.com/urfave/cli/v2"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/term"
)
