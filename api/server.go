// Package api is fieldsync's HTTP layer: Echo routes, JSON wire shapes that
// mirror openapi.yaml, authentication, and problem+json errors. Handlers
// are thin: they bind and validate, call a store or engine, and encode.
package api

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// Store is what the HTTP layer needs of storage for people and sessions.
// Methods return *models.Error codes as documented on the store.
type Store interface {
	Org(ctx context.Context, id uuid.UUID) (models.Org, error)
	UpdateOrgSettings(ctx context.Context, orgID, actor uuid.UUID, s models.OrgSettings) (models.Org, error)
	UserByEmail(ctx context.Context, email string) (models.User, error)
	User(ctx context.Context, orgID, id uuid.UUID) (models.User, error)
	Users(ctx context.Context, orgID uuid.UUID, teamID *uuid.UUID) ([]models.User, error)
	CreateUser(ctx context.Context, u models.User) error
	UpdateUser(ctx context.Context, orgID, id uuid.UUID, p models.UserPatch) (models.User, error)
	ReplacePasswordHash(ctx context.Context, orgID, id uuid.UUID, prev, next string) error
	CreateTeam(ctx context.Context, t models.Team) error
	Team(ctx context.Context, orgID, id uuid.UUID) (models.Team, error)
	Teams(ctx context.Context, orgID uuid.UUID) ([]models.Team, error)

	CreateSession(ctx context.Context, s models.Session, refreshHash string) error
	RotateRefresh(ctx context.Context, oldHash, newHash string, expiresAt time.Time) (models.Session, models.User, error)
	RevokeSession(ctx context.Context, orgID, id uuid.UUID) error
	LivePrincipal(ctx context.Context, orgID, sessionID, userID uuid.UUID) (models.Principal, error)
}

// Reports are the aggregate reads behind /v1/reports.
type Reports interface {
	Productivity(ctx context.Context, orgID uuid.UUID, teamID *uuid.UUID, from, to time.Time) ([]models.ProductivityRow, error)
}

// Metrics receives what the HTTP layer measures; package telemetry
// implements it, so that api knows no Prometheus. protocol is
// "native" or "watermelondb".
type Metrics interface {
	// Request counts one request by route (Echo's path pattern).
	Request(method, route string, status int, took time.Duration)
	// Pushed counts an applied push's outcomes, one per mutation or
	// WatermelonDB record.
	Pushed(protocol string, outcomes []engine.Outcome)
	// Pulled records one pull response: the changes served and the
	// server write time of the oldest (zero when none).
	Pulled(protocol string, changes int, oldest time.Time)
}

// Protocols, as Metrics names them.
const (
	protocolNative       = "native"
	protocolWatermelonDB = "watermelondb"
)

// noMetrics measures nothing.
type noMetrics struct{}

func (noMetrics) Request(string, string, int, time.Duration) {}
func (noMetrics) Pushed(string, []engine.Outcome)            {}
func (noMetrics) Pulled(string, int, time.Time)              {}

// AuditStore reads the audit log (store.AuditLog).
type AuditStore interface {
	// Entries lists an organisation's entries matching f, newest first,
	// at most limit of them.
	Entries(ctx context.Context, orgID uuid.UUID, f models.AuditFilter, limit int) ([]models.AuditEntry, error)
}

// Deps are the server's collaborators. Store, Tokens and Passwords are
// required; the rest have defaults.
type Deps struct {
	Store Store
	Sync  *engine.Engine
	// Watermelon serves /v1/sync/watermelondb; nil builds it over Sync
	// and WatermelonStore when both are set.
	Watermelon      *watermelondb.Protocol
	WatermelonStore watermelondb.Store
	Reports         Reports
	Tokens          *auth.Tokens
	Passwords       *auth.Passwords
	Logger          *slog.Logger
	Now             func() time.Time
	// Notifications stores push tokens, preferences and the inbox; the
	// notification routes need it (there is no default).
	Notifications NotificationStore
	// Audit reads the organisation's audit log for GET /v1/audit (there
	// is no default: without it the route answers 503).
	Audit AuditStore
	// Idempotency keeps answers to POSTs sent with an Idempotency-Key; nil
	// ignores the header.
	Idempotency IdempotencyStore
	// Ready reports whether the service can take traffic (database
	// reachable, schema current); nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics receives the requests', pushes' and pulls' measures; nil
	// measures nothing.
	Metrics Metrics
	// Spec is openapi.yaml, served at /openapi.yaml.
	Spec []byte
	// BodyLimit caps request bodies in bytes; 0 means 4 MiB.
	BodyLimit int64
	// TrustedProxies are the only peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// HSTSMaxAge, when positive, sends Strict-Transport-Security with it:
	// set it only when clients reach the server over HTTPS alone.
	HSTSMaxAge time.Duration
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed
	// to call the API; none means no CORS answers at all.
	CORSOrigins []string
	// LoginPolicy overrides auth.DefaultLoginPolicy (tests).
	LoginPolicy auth.LoginPolicy
	Version     string
	// PushTimeout is the deadline of a push (POST /v1/sync/push and the
	// WatermelonDB push), RequestTimeout that of every other request,
	// database waits included; zero means 15 s and 10 s. Past it the
	// request's context ends with errDeadline as its cause: the store
	// rolls back and the request answers 503.
	PushTimeout, RequestTimeout time.Duration
	// PushBudget bounds the mutations each user's pushes carry (see
	// PushBudget); the zero value sets no budget. Refused pushes answer
	// 429 rate_limited with Retry-After.
	PushBudget PushBudget
}

// Server holds the HTTP layer's state; Handler returns its router.
type Server struct {
	store     Store
	sync      *engine.Engine
	wm        *watermelondb.Protocol
	reports   Reports
	notif     NotificationStore
	audit     AuditStore
	idem      IdempotencyStore
	tokens    *auth.Tokens
	passwords *auth.Passwords
	log       *slog.Logger
	now       func() time.Time
	ready     func(ctx context.Context) error
	spec      []byte
	bodyLimit int64
	version   string
	logins    *auth.LoginGuard
	hsts      string
	cors      map[string]bool
	// pushTimeout and requestTimeout are the deadlines (see deadline).
	pushTimeout, requestTimeout time.Duration
	metrics                     Metrics
	// budget is each user's budget of pushed mutations; nil is none.
	budget *pushBudgets
	echo   *echo.Echo
}

// New builds the server and its router.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Ready == nil {
		d.Ready = func(context.Context) error { return nil }
	}
	if d.Metrics == nil {
		d.Metrics = noMetrics{}
	}
	if d.BodyLimit == 0 {
		d.BodyLimit = 4 << 20
	}
	if d.Watermelon == nil && d.Sync != nil && d.WatermelonStore != nil {
		d.Watermelon = watermelondb.New(d.Sync, d.WatermelonStore)
	}
	if d.PushTimeout == 0 {
		d.PushTimeout = 15 * time.Second
	}
	if d.RequestTimeout == 0 {
		d.RequestTimeout = 10 * time.Second
	}
	s := &Server{
		store: d.Store, sync: d.Sync, wm: d.Watermelon, reports: d.Reports, notif: d.Notifications, audit: d.Audit, tokens: d.Tokens, passwords: d.Passwords, log: d.Logger, now: d.Now,
		idem: d.Idempotency, ready: d.Ready, spec: d.Spec, bodyLimit: d.BodyLimit, version: d.Version,
		pushTimeout: d.PushTimeout, requestTimeout: d.RequestTimeout,
		logins:  auth.NewLoginGuard(d.LoginPolicy, d.Now),
		metrics: d.Metrics,
		budget:  newPushBudgets(d.PushBudget, d.Now),
	}
	if d.HSTSMaxAge > 0 {
		s.hsts = "max-age=" + strconv.Itoa(int(d.HSTSMaxAge/time.Second))
	}
	s.cors = make(map[string]bool, len(d.CORSOrigins))
	for _, o := range d.CORSOrigins {
		s.cors[o] = true
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(d.TrustedProxies)
	s.echo = e
	s.routes(e)
	return s
}

// Handler is the router, ready for an http.Server.
func (s *Server) Handler() *echo.Echo { return s.echo }

// ipExtractor believes X-Forwarded-For only from the named proxies. Echo
// v4's default trusts any X-Forwarded-For (GO-2026-6872), which would let
// a client pick its own address and dodge the login limit.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(prefixNet(p)))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
