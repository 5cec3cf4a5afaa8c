// Package demo seeds "Demo Field Co", the organisation `fieldsync serve
// --demo` starts with, so that a new developer or a sales-ops evaluator can
// log in as a rep, a manager or an admin at once.
package demo

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Password is every demo user's password.
const Password = "demo-pass-1234"

// OrgName is the demo organisation's name.
const OrgName = "Demo Field Co"

// Login is one demo user, as printed at start-up.
type Login struct {
	Email string
	Role  models.Role
	Team  string
}

type teamPlan struct {
	name     string
	manager  string
	reps     []string
	city     string
	areaCode string
	lat      float64
	lng      float64
	streets  []string
}

var teams = []teamPlan{
	{
		name: "North", manager: "manager1@demo.test", city: "Minneapolis", areaCode: "612", lat: 44.9778, lng: -93.2650,
		reps:    []string{"rep1@demo.test", "rep2@demo.test", "rep3@demo.test"},
		streets: []string{"Hennepin Ave", "Nicollet Mall", "Lyndale Ave S", "University Ave SE", "Lake St", "Central Ave NE", "Washington Ave N", "Grand Ave S", "Broadway St NE", "Cedar Ave S"},
	},
	{
		name: "South", manager: "manager2@demo.test", city: "Austin", areaCode: "512", lat: 30.2672, lng: -97.7431,
		reps:    []string{"rep4@demo.test", "rep5@demo.test", "rep6@demo.test"},
		streets: []string{"Congress Ave", "S Lamar Blvd", "E 6th St", "Guadalupe St", "Burnet Rd", "E Cesar Chavez St", "N Lamar Blvd", "S 1st St", "Manor Rd", "Red River St"},
	},
}

// Business names for the accounts, twenty per team.
var businesses = [][]string{
	{"Lakeside Hardware", "Northstar Dental Group", "Mill City Bakery", "Riverfront Auto Repair", "Cedar Lake Pharmacy",
		"Twin Ports Plumbing Supply", "Loring Park Florist", "Stone Arch Coffee Co", "Nordeast Brewing Supply", "Uptown Pet Clinic",
		"Gopher State Electric", "Whittier Office Furniture", "Bde Maka Ska Sports", "Dinkytown Print Shop", "Longfellow Garden Center",
		"North Loop Barber Co", "Powderhorn Physical Therapy", "Seward Co-op Grocery", "Como Avenue Paints", "Minnehaha Falls Marine"},
	{"Hill Country Hardware", "Barton Springs Dental", "Bluebonnet Bakery", "Lone Star Auto Glass", "Zilker Park Pharmacy",
		"Colorado River Plumbing", "South Congress Florals", "Rainey Street Coffee", "Travis Heights Vet", "Mueller Fitness Studio",
		"Pecan Street Electric", "Clarksville Office Supply", "Lady Bird Lake Outfitters", "Hyde Park Print & Copy", "Bouldin Creek Nursery",
		"East Side Barbers", "Windsor Park Physio", "Cherrywood Market", "Tarrytown Paint & Decor", "Onion Creek Boats"},
}

// Seed creates the demo organisation when the database has none, and
// reports whether it did. It never touches an existing database.
func Seed(ctx context.Context, db *store.DB, pw *auth.Passwords, now time.Time) (bool, error) {
	n, err := db.People().CountOrgs(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	// One hash serves every demo user: they share a password, and hashing
	// at production cost is slow enough to make nine hashes noticeable.
	hash, err := pw.Hash(Password)
	if err != nil {
		return false, err
	}
	now = now.UTC()
	org := models.Org{ID: uuid.New(), Name: OrgName, CreatedAt: now}
	user := func(email, name string, role models.Role, team *uuid.UUID) models.User {
		return models.User{
			OrgID: org.ID, ID: uuid.New(), Email: email, Name: name, Role: role, TeamID: team,
			Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
		}
	}
	if err := db.People().CreateOrg(ctx, org, user("admin@demo.test", "Avery Admin", models.RoleAdmin, nil)); err != nil {
		return false, fmt.Errorf("seed org: %w", err)
	}
	repNames := []string{"Riley Park", "Jordan Lee", "Casey Morgan", "Sam Ortiz", "Taylor Brooks", "Morgan Diaz"}
	managerNames := []string{"Dana North", "Chris South"}
	var accounts []*engine.Record
	for ti, tp := range teams {
		const tz = "America/Chicago" // both cities keep Central time
		mgr := user(tp.manager, managerNames[ti], models.RoleManager, nil)
		mgr.TimeZone = tz
		if err := db.People().CreateUser(ctx, mgr); err != nil {
			return false, fmt.Errorf("seed %s: %w", tp.manager, err)
		}
		team := models.Team{OrgID: org.ID, ID: uuid.New(), Name: tp.name, ManagerID: &mgr.ID, CreatedAt: now}
		if err := db.People().CreateTeam(ctx, team); err != nil {
			return false, fmt.Errorf("seed team %s: %w", tp.name, err)
		}
		var reps []uuid.UUID
		for ri, email := range tp.reps {
			rep := user(email, repNames[ti*3+ri], models.RoleRep, &team.ID)
			rep.TimeZone = tz
			if err := db.People().CreateUser(ctx, rep); err != nil {
				return false, fmt.Errorf("seed %s: %w", email, err)
			}
			reps = append(reps, rep.ID)
		}
		for i, name := range businesses[ti] {
			// Spread accounts on a spiral of about 15 km around the city.
			angle := float64(i) * 2.39996 // golden angle: even, deterministic
			r := 0.02 + 0.13*math.Sqrt(float64(i)/float64(len(businesses[ti])))
			lat := coord(tp.lat + r*math.Cos(angle))
			lng := coord(tp.lng + r*math.Sin(angle)/math.Cos(tp.lat*math.Pi/180))
			status := "customer"
			if i%3 == 2 {
				status = "prospect"
			}
			accounts = append(accounts, &engine.Record{
				ID: uuid.New(), CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{
					"name": name, "name_key": sales.NameKey(name), "team_id": team.ID,
					"address": fmt.Sprintf("%d %s", 100+(i*137)%4800, tp.streets[i%len(tp.streets)]),
					"city":    tp.city, "lat": lat, "lng": lng, "status": status,
					"phone":        fmt.Sprintf("+1 %s 555 01%02d", tp.areaCode, i),
					"owner_rep_id": reps[i%len(reps)],
				},
			})
		}
	}
	if err := db.Feed().SeedRecords(ctx, org.ID, sales.Accounts(), accounts); err != nil {
		return false, fmt.Errorf("seed accounts: %w", err)
	}
	return true, nil
}

// coord rounds a degree to 6 decimals (about 10 cm), as a phone reports
// it; sums of floats otherwise show as 44.997800000000005.
func coord(deg float64) float64 { return math.Round(deg*1e6) / 1e6 }

// Logins lists the demo users to print at start-up.
func Logins() []Login {
	out := []Login{{Email: "admin@demo.test", Role: models.RoleAdmin}}
	for _, tp := range teams {
		out = append(out, Login{Email: tp.manager, Role: models.RoleManager, Team: tp.name})
		for _, r := range tp.reps {
			out = append(out, Login{Email: r, Role: models.RoleRep, Team: tp.name})
		}
	}
	return out
}
