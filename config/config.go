// Package config reads fieldsync's settings from flags and their
// environment twins. There are no globals: Load returns a value that main
// passes to constructors.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the server's configuration.
type Config struct {
	Addr string
	// MetricsAddr is where /metrics is served; empty serves it nowhere.
	MetricsAddr        string
	DatabaseURL        string
	JWTSecret          string
	JWTPreviousSecrets []string
	LogFormat          string
	LogLevel           string
	NoMigrate          bool
	Demo               bool
	TrustedProxies     []netip.Prefix
	BodyLimitBytes     int64
	// CORSOrigins are the browser origins allowed to call the API (none:
	// CORS is off); HSTSMaxAge, when positive, is sent as HSTS.
	CORSOrigins []string
	HSTSMaxAge  time.Duration
	// TombstoneRetention is how long a deleted record is kept for devices
	// to learn of the delete; a device that last pulled before a purged
	// tombstone resyncs from scratch.
	TombstoneRetention time.Duration
	// LocationRetention is how long positions are kept as recorded; past
	// it they are coarsened to about 1 km (sales.RedactLocations).
	LocationRetention time.Duration
	// Firebase Cloud Messaging (see package notifications): with neither
	// credentials nor an endpoint, pushes are only logged.
	FirebaseCredentialsFile string
	FirebaseProjectID       string
	FCMEndpoint             string
	// PushTimeout bounds a push (POST /v1/sync/push and the WatermelonDB
	// push) and RequestTimeout every other request, database waits
	// included: past it the request rolls back and answers 503. Both stay
	// at least 5 s below WriteTimeout, so the answer can still be sent.
	PushTimeout    time.Duration
	RequestTimeout time.Duration
	// UserMutationRate is the mutations a second each user's pushes may
	// carry on average, UserMutationBurst the mutations they may push at
	// once after a quiet spell (api.PushBudget); a rate of 0 sets no
	// budget.
	UserMutationRate  float64
	UserMutationBurst int
}

// minMutationBurst is the smallest --user-mutation-burst: the largest
// push (engine.MaxBatch), so that any one push fits in a full budget.
const minMutationBurst = 1000

// WriteTimeout is the server's http.Server.WriteTimeout: an answer not
// written by then is lost, the client seeing only a closed connection.
const WriteTimeout = 60 * time.Second

// maxRequestTimeout is the longest --push-timeout or --request-timeout:
// it leaves 5 s of WriteTimeout to send the answer.
const maxRequestTimeout = WriteTimeout - 5*time.Second

// Option is one setting: its flag, its environment twin and its default.
// Options with File set also read NAME_FILE, a path whose contents are the
// value, so secrets can come from mounted files rather than the environment.
type Option struct {
	Flag    string
	Env     string
	Default string
	Usage   string
	File    bool
	Bool    bool
}

// Options lists every setting of `fieldsync serve`, in one table.
var Options = []Option{
	{Flag: "addr", Env: "FIELDSYNC_ADDR", Default: ":8080", Usage: "address to listen on"},
	{Flag: "metrics-addr", Env: "FIELDSYNC_METRICS_ADDR", Usage: "address to serve Prometheus /metrics on, such as 127.0.0.1:9090 (default: not served); keep it off the public network"},
	{Flag: "database-url", Env: "FIELDSYNC_DATABASE_URL", Default: "sqlite:fieldsync.db", Usage: "postgres://… for PostgreSQL, sqlite:PATH for an SQLite file", File: true},
	{Flag: "jwt-secret", Env: "FIELDSYNC_JWT_SECRET", Usage: "HMAC secret for access tokens, at least 32 bytes (generated in --demo mode)", File: true},
	{Flag: "jwt-previous-secrets", Env: "FIELDSYNC_JWT_PREVIOUS_SECRETS", Usage: "comma-separated secrets that still verify during rotation", File: true},
	{Flag: "log-format", Env: "FIELDSYNC_LOG_FORMAT", Default: "text", Usage: "log format: json or text"},
	{Flag: "log-level", Env: "FIELDSYNC_LOG_LEVEL", Default: "info", Usage: "log level: debug, info, warn or error"},
	{Flag: "no-migrate", Env: "FIELDSYNC_NO_MIGRATE", Default: "false", Usage: "do not migrate on start; refuse to start if the schema is behind", Bool: true},
	{Flag: "demo", Env: "FIELDSYNC_DEMO", Default: "false", Usage: "seed the demo organisation into an empty database", Bool: true},
	{Flag: "trusted-proxies", Env: "FIELDSYNC_TRUSTED_PROXIES", Usage: "comma-separated CIDRs of proxies whose X-Forwarded-For is believed"},
	{Flag: "cors-origins", Env: "FIELDSYNC_CORS_ORIGINS", Usage: "comma-separated browser origins (https://app.example) allowed to call the API; none turns CORS off"},
	{Flag: "hsts-max-age", Env: "FIELDSYNC_HSTS_MAX_AGE", Default: "0s", Usage: "send Strict-Transport-Security with this max-age, such as 8760h; only when clients reach the server over HTTPS alone (0: not sent)"},
	{Flag: "body-limit", Env: "FIELDSYNC_BODY_LIMIT", Default: "4194304", Usage: "largest request body accepted, in bytes"},
	{Flag: "tombstone-retention", Env: "FIELDSYNC_TOMBSTONE_RETENTION", Default: "2160h", Usage: "how long deleted records are kept for offline devices to learn of them (at least 24h); a device that last synced earlier resyncs from scratch"},
	{Flag: "location-retention", Env: "FIELDSYNC_LOCATION_RETENTION", Default: "4320h", Usage: "how long visit and ride-along positions are kept as recorded (at least 24h); older ones are coarsened hourly to about 1 km"},
	{Flag: "push-timeout", Env: "FIELDSYNC_PUSH_TIMEOUT", Default: "15s", Usage: "deadline of a push, database waits included; past it the push rolls back and answers 503 (1s to 55s)"},
	{Flag: "request-timeout", Env: "FIELDSYNC_REQUEST_TIMEOUT", Default: "10s", Usage: "deadline of every other request; past it the request answers 503 (1s to 55s)"},
	{Flag: "user-mutation-rate", Env: "FIELDSYNC_USER_MUTATION_RATE", Default: "100", Usage: "mutations a second each user's pushes (all their devices, both protocols) may carry on average; past the budget a push answers 429 rate_limited with Retry-After (0: no budget)"},
	{Flag: "user-mutation-burst", Env: "FIELDSYNC_USER_MUTATION_BURST", Default: "10000", Usage: "mutations a user may push at once before --user-mutation-rate holds them back, e.g. a phone back from weeks offline (at least 1000)"},
	{Flag: "firebase-credentials-file", Env: "FIELDSYNC_FIREBASE_CREDENTIALS_FILE", Usage: "Firebase service-account JSON key for push notifications (else GOOGLE_APPLICATION_CREDENTIALS)"},
	{Flag: "firebase-project-id", Env: "FIELDSYNC_FIREBASE_PROJECT_ID", Usage: "Firebase project id (default: the key's project_id)"},
	{Flag: "fcm-endpoint", Env: "FIELDSYNC_FCM_ENDPOINT", Usage: "FCM v1 base URL to send to instead of Google's, e.g. a local fake or an emulator"},
}

// GoogleCredentialsEnv is read when --firebase-credentials-file is unset.
const GoogleCredentialsEnv = "GOOGLE_APPLICATION_CREDENTIALS"

// Env names every environment variable the server reads, including _FILE
// twins; the docker-compose test checks compose sets nothing else.
func Env() []string {
	var names []string
	for _, o := range Options {
		names = append(names, o.Env)
		if o.File {
			names = append(names, o.Env+"_FILE")
		}
	}
	return append(names, GoogleCredentialsEnv)
}

// Load parses args (after the subcommand) with getenv supplying defaults.
// Flags win over the environment, which wins over the defaults.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make(map[string]*string, len(Options))
	for _, o := range Options {
		def, err := envValue(o, getenv)
		if err != nil {
			return Config{}, err
		}
		if def == "" {
			def = o.Default
		}
		if o.Bool {
			fs.Bool(o.Flag, def == "true" || def == "1", o.Usage+" ("+o.Env+")")
			continue
		}
		vals[o.Flag] = fs.String(o.Flag, def, o.Usage+" ("+o.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	get := func(name string) string {
		if p := vals[name]; p != nil {
			return *p
		}
		return ""
	}
	boolFlag := func(name string) bool {
		f := fs.Lookup(name)
		return f != nil && f.Value.String() == "true"
	}
	c := Config{
		Addr:        get("addr"),
		MetricsAddr: get("metrics-addr"),
		DatabaseURL: get("database-url"),
		JWTSecret:   get("jwt-secret"),
		LogFormat:   get("log-format"),
		LogLevel:    get("log-level"),
		NoMigrate:   boolFlag("no-migrate"),
		Demo:        boolFlag("demo"),
	}
	c.JWTPreviousSecrets = splitList(get("jwt-previous-secrets"))
	c.FirebaseCredentialsFile = get("firebase-credentials-file")
	if c.FirebaseCredentialsFile == "" {
		// The Google SDKs' conventional variable, read as a fallback.
		c.FirebaseCredentialsFile = getenv(GoogleCredentialsEnv)
	}
	c.FirebaseProjectID = get("firebase-project-id")
	c.FCMEndpoint = get("fcm-endpoint")
	if c.FCMEndpoint != "" {
		if u, err := url.Parse(c.FCMEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("fcm-endpoint: want an http(s) URL such as http://localhost:9099, got %q", c.FCMEndpoint)
		}
	}
	for _, s := range splitList(get("trusted-proxies")) {
		p, err := parsePrefix(s)
		if err != nil {
			return Config{}, fmt.Errorf("trusted-proxies: %w", err)
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	for _, o := range splitList(get("cors-origins")) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return Config{}, fmt.Errorf("cors-origins: want origins such as https://app.example (scheme and host, no path), got %q", o)
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	hsts, err := time.ParseDuration(get("hsts-max-age"))
	if err != nil || hsts < 0 {
		return Config{}, fmt.Errorf("hsts-max-age: want a duration such as 8760h, or 0 to send none, got %q", get("hsts-max-age"))
	}
	c.HSTSMaxAge = hsts
	if _, err := fmt.Sscan(get("body-limit"), &c.BodyLimitBytes); err != nil || c.BodyLimitBytes < 1024 {
		return Config{}, fmt.Errorf("body-limit: want a number of bytes ≥ 1024, got %q", get("body-limit"))
	}
	retention, err := time.ParseDuration(get("tombstone-retention"))
	if err != nil || retention < 24*time.Hour {
		return Config{}, fmt.Errorf("tombstone-retention: want a duration of at least 24h, such as 2160h, got %q", get("tombstone-retention"))
	}
	c.TombstoneRetention = retention
	locations, err := time.ParseDuration(get("location-retention"))
	if err != nil || locations < 24*time.Hour {
		return Config{}, fmt.Errorf("location-retention: want a duration of at least 24h, such as 4320h, got %q", get("location-retention"))
	}
	c.LocationRetention = locations
	if c.PushTimeout, err = timeout("push-timeout", get("push-timeout")); err != nil {
		return Config{}, err
	}
	if c.RequestTimeout, err = timeout("request-timeout", get("request-timeout")); err != nil {
		return Config{}, err
	}
	if c.UserMutationRate, err = strconv.ParseFloat(get("user-mutation-rate"), 64); err != nil || c.UserMutationRate < 0 || math.IsInf(c.UserMutationRate, 0) || math.IsNaN(c.UserMutationRate) {
		return Config{}, fmt.Errorf("user-mutation-rate: want mutations a second, such as 100, or 0 for no budget, got %q", get("user-mutation-rate"))
	}
	if c.UserMutationBurst, err = strconv.Atoi(get("user-mutation-burst")); err != nil || c.UserMutationBurst < minMutationBurst {
		return Config{}, fmt.Errorf("user-mutation-burst: want a number of mutations ≥ %d (the largest push), got %q", minMutationBurst, get("user-mutation-burst"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return Config{}, fmt.Errorf("log-format: want json or text, got %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return Config{}, fmt.Errorf("log-level: want debug, info, warn or error, got %q", c.LogLevel)
	}
	if !c.Demo && c.JWTSecret == "" {
		return Config{}, errors.New("jwt-secret is required outside --demo mode (set FIELDSYNC_JWT_SECRET or FIELDSYNC_JWT_SECRET_FILE)")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return Config{}, fmt.Errorf("jwt-secret must be at least 32 bytes, got %d", len(c.JWTSecret))
	}
	return c, nil
}

// PrintFlags writes the flags of `fieldsync serve` as flag.PrintDefaults
// does, each with its environment variable and its default (not the
// environment's value, which may be a secret).
func PrintFlags(w io.Writer) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(w)
	for _, o := range Options {
		if o.Bool {
			fs.Bool(o.Flag, o.Default == "true", o.Usage+" ("+o.Env+")")
			continue
		}
		fs.String(o.Flag, o.Default, o.Usage+" ("+o.Env+")")
	}
	fs.PrintDefaults()
}

// timeout parses a request deadline: at least a second, and short enough
// that the 503 it ends in is written before WriteTimeout.
func timeout(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > maxRequestTimeout {
		return 0, fmt.Errorf("%s: want a duration from 1s to %s (the write timeout, %s, less 5s to send the answer), got %q",
			name, maxRequestTimeout, WriteTimeout, v)
	}
	return d, nil
}

func envValue(o Option, getenv func(string) string) (string, error) {
	if v := getenv(o.Env); v != "" {
		return v, nil
	}
	if !o.File {
		return "", nil
	}
	path := getenv(o.Env + "_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", o.Env, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
