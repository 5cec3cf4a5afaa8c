package models

import (
	"time"

	"github.com/google/uuid"
)

// AccountStatus says whether an account has bought yet.
type AccountStatus string

const (
	AccountProspect AccountStatus = "prospect"
	AccountCustomer AccountStatus = "customer"
)

// Account is a customer or prospect a team calls on.
type Account struct {
	OrgID      uuid.UUID
	ID         uuid.UUID
	TeamID     *uuid.UUID
	Name       string
	Address    string
	City       string
	Lat, Lng   *float64
	Status     AccountStatus
	Phone      string
	Notes      string
	OwnerRepID *uuid.UUID
	CreatedAt  time.Time
	UpdatedAt  time.Time
}
