package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
)

type accountRow struct {
	OrgID               uuid.UUID `gorm:"primaryKey"`
	ID                  uuid.UUID `gorm:"primaryKey"`
	TeamID              *uuid.UUID
	Name                string
	Address             string
	City                string
	Lat                 *float64
	Lng                 *float64
	Status              string
	Phone               string
	Notes               string
	OwnerRepID          *uuid.UUID
	PossibleDuplicateOf *uuid.UUID
	CreatedAt           time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt           time.Time `gorm:"autoUpdateTime:false"`
}

func (accountRow) TableName() string { return "accounts" }

// InsertAccounts adds accounts in one transaction (demo seeding and
// imports).
func (db *DB) InsertAccounts(ctx context.Context, accounts []models.Account) error {
	if len(accounts) == 0 {
		return nil
	}
	rows := make([]accountRow, len(accounts))
	for i, a := range accounts {
		rows[i] = accountRow{
			OrgID: a.OrgID, ID: a.ID, TeamID: a.TeamID, Name: a.Name, Address: a.Address, City: a.City,
			Lat: a.Lat, Lng: a.Lng, Status: string(a.Status), Phone: a.Phone, Notes: a.Notes,
			OwnerRepID: a.OwnerRepID, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		}
	}
	return db.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.CreateInBatches(rows, 200).Error; err != nil {
			return fmt.Errorf("insert accounts: %w", err)
		}
		return nil
	})
}
