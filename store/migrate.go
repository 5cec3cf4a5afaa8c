package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrations embed.FS

// MigrationStatus reports how far the schema is from the code's.
type MigrationStatus struct {
	Current int64 // applied version
	Latest  int64 // newest version this binary knows
}

// Behind reports whether migrations are pending.
func (s MigrationStatus) Behind() bool { return s.Current < s.Latest }

func (db *DB) provider() (*goose.Provider, error) {
	name := db.dialect.name()
	sub, err := fs.Sub(migrations, "migrations/"+string(name))
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", name, err)
	}
	d, opts, err := db.dialect.goose()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(d, db.sql, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", name, err)
	}
	return p, nil
}

// Migrate applies every pending migration and returns the versions applied.
func (db *DB) Migrate(ctx context.Context) ([]int64, error) {
	p, err := db.provider()
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	applied := make([]int64, 0, len(res))
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// MigrationStatus reports the applied and the latest known version.
func (db *DB) MigrationStatus(ctx context.Context) (MigrationStatus, error) {
	p, err := db.provider()
	if err != nil {
		return MigrationStatus{}, err
	}
	cur, target, err := p.GetVersions(ctx)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", err)
	}
	return MigrationStatus{Current: cur, Latest: target}, nil
}
