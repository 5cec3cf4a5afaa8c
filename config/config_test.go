package config_test

import (
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/config"
)

// secret32 is the shortest secret Load accepts.
const secret32 = "0123456789abcdef0123456789abcdef"

// env makes a getenv from a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// load runs config.Load with the secret set unless the case sets it.
func load(t *testing.T, args []string, vars map[string]string) (config.Config, error) {
	t.Helper()
	return config.Load(args, env(vars), io.Discard)
}

func withSecret(vars map[string]string) map[string]string {
	out := map[string]string{"FIELDSYNC_JWT_SECRET": secret32}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	c, err := load(t, nil, withSecret(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Addr:           ":8080",
		DatabaseURL:    "sqlite:fieldsync.db",
		JWTSecret:      secret32,
		LogFormat:      "text",
		LogLevel:       "info",
		BodyLimitBytes: 4 << 20,
		// Ninety days: longer than any phone stays offline in practice.
		TombstoneRetention: 90 * 24 * time.Hour,
		// About six months of precise positions.
		LocationRetention: 180 * 24 * time.Hour,
		// Below a phone's own timeouts, and well below the write timeout.
		PushTimeout:    15 * time.Second,
		RequestTimeout: 10 * time.Second,
		// A rep logs a few hundred mutations a day; two phones back from
		// 60 days offline push their backlogs at once.
		UserMutationRate:  100,
		UserMutationBurst: 10000,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load with no flags:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		get  func(config.Config) any
		want any
	}{
		{
			name: "default when neither flag nor env",
			get:  func(c config.Config) any { return c.LogLevel },
			want: "info",
		},
		{
			name: "env beats default",
			vars: map[string]string{"FIELDSYNC_LOG_LEVEL": "warn"},
			get:  func(c config.Config) any { return c.LogLevel },
			want: "warn",
		},
		{
			name: "flag beats env",
			args: []string{"--log-level", "debug"},
			vars: map[string]string{"FIELDSYNC_LOG_LEVEL": "warn"},
			get:  func(c config.Config) any { return c.LogLevel },
			want: "debug",
		},
		{
			name: "flag beats default",
			args: []string{"-addr=127.0.0.1:9999"},
			get:  func(c config.Config) any { return c.Addr },
			want: "127.0.0.1:9999",
		},
		{
			name: "env database url beats default",
			vars: map[string]string{"FIELDSYNC_DATABASE_URL": "postgres://u@db:5432/x"},
			get:  func(c config.Config) any { return c.DatabaseURL },
			want: "postgres://u@db:5432/x",
		},
		{
			name: "bool env true beats default false",
			vars: map[string]string{"FIELDSYNC_NO_MIGRATE": "true"},
			get:  func(c config.Config) any { return c.NoMigrate },
			want: true,
		},
		{
			name: "bool env 1 means true",
			vars: map[string]string{"FIELDSYNC_DEMO": "1"},
			get:  func(c config.Config) any { return c.Demo },
			want: true,
		},
		{
			name: "bool flag false beats env true",
			args: []string{"--demo=false"},
			vars: map[string]string{"FIELDSYNC_DEMO": "true"},
			get:  func(c config.Config) any { return c.Demo },
			want: false,
		},
		{
			name: "bare bool flag",
			args: []string{"--no-migrate"},
			get:  func(c config.Config) any { return c.NoMigrate },
			want: true,
		},
		{
			name: "location retention from env",
			vars: map[string]string{"FIELDSYNC_LOCATION_RETENTION": "720h"},
			get:  func(c config.Config) any { return c.LocationRetention },
			want: 30 * 24 * time.Hour,
		},
		{
			name: "push timeout from env",
			vars: map[string]string{"FIELDSYNC_PUSH_TIMEOUT": "30s"},
			get:  func(c config.Config) any { return c.PushTimeout },
			want: 30 * time.Second,
		},
		{
			name: "user mutation rate from env, fractional",
			vars: map[string]string{"FIELDSYNC_USER_MUTATION_RATE": "2.5"},
			get:  func(c config.Config) any { return c.UserMutationRate },
			want: 2.5,
		},
		{
			name: "user mutation rate 0: no budget",
			args: []string{"--user-mutation-rate", "0"},
			get:  func(c config.Config) any { return c.UserMutationRate },
			want: 0.0,
		},
		{
			name: "user mutation burst flag beats env",
			args: []string{"--user-mutation-burst", "5000"},
			vars: map[string]string{"FIELDSYNC_USER_MUTATION_BURST": "20000"},
			get:  func(c config.Config) any { return c.UserMutationBurst },
			want: 5000,
		},
		{
			name: "request timeout flag beats env",
			args: []string{"--request-timeout", "5s"},
			vars: map[string]string{"FIELDSYNC_REQUEST_TIMEOUT": "20s"},
			get:  func(c config.Config) any { return c.RequestTimeout },
			want: 5 * time.Second,
		},
		{
			name: "body limit from env",
			vars: map[string]string{"FIELDSYNC_BODY_LIMIT": "2048"},
			get:  func(c config.Config) any { return c.BodyLimitBytes },
			want: int64(2048),
		},
		{
			name: "jwt secret flag beats env",
			args: []string{"--jwt-secret", strings.Repeat("f", 40)},
			get:  func(c config.Config) any { return c.JWTSecret },
			want: strings.Repeat("f", 40),
		},
		{
			name: "previous secrets split on commas and trimmed",
			vars: map[string]string{"FIELDSYNC_JWT_PREVIOUS_SECRETS": " " + strings.Repeat("a", 32) + " ,, " + strings.Repeat("b", 32)},
			get:  func(c config.Config) any { return c.JWTPreviousSecrets },
			want: []string{strings.Repeat("a", 32), strings.Repeat("b", 32)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, withSecret(tt.vars))
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.args, err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSecretFile(t *testing.T) {
	fileSecret := strings.Repeat("s", 48)
	tests := []struct {
		name    string
		vars    func(t *testing.T) map[string]string
		want    string
		wantErr string
	}{
		{
			name: "secret read from FIELDSYNC_JWT_SECRET_FILE, trailing newline trimmed",
			vars: func(t *testing.T) map[string]string {
				return map[string]string{"FIELDSYNC_JWT_SECRET_FILE": writeFile(t, fileSecret+"\n")}
			},
			want: fileSecret,
		},
		{
			name: "FIELDSYNC_JWT_SECRET beats its _FILE twin",
			vars: func(t *testing.T) map[string]string {
				return map[string]string{
					"FIELDSYNC_JWT_SECRET":      secret32,
					"FIELDSYNC_JWT_SECRET_FILE": writeFile(t, fileSecret),
				}
			},
			want: secret32,
		},
		{
			name: "missing file is an error naming the variable",
			vars: func(t *testing.T) map[string]string {
				return map[string]string{"FIELDSYNC_JWT_SECRET_FILE": filepath.Join(t.TempDir(), "nope")}
			},
			wantErr: "FIELDSYNC_JWT_SECRET_FILE",
		},
		{
			name: "short secret in a file refused",
			vars: func(t *testing.T) map[string]string {
				return map[string]string{"FIELDSYNC_JWT_SECRET_FILE": writeFile(t, "short\n")}
			},
			wantErr: "at least 32 bytes",
		},
		{
			name: "database url read from FIELDSYNC_DATABASE_URL_FILE",
			vars: func(t *testing.T) map[string]string {
				return map[string]string{
					"FIELDSYNC_JWT_SECRET":        secret32,
					"FIELDSYNC_DATABASE_URL_FILE": writeFile(t, "postgres://from-file/db\n"),
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.vars(t)
			c, err := load(t, nil, vars)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.want != "" && c.JWTSecret != tt.want {
				t.Errorf("got secret %q, want %q", c.JWTSecret, tt.want)
			}
			if _, ok := vars["FIELDSYNC_DATABASE_URL_FILE"]; ok && c.DatabaseURL != "postgres://from-file/db" {
				t.Errorf("got database url %q, want %q", c.DatabaseURL, "postgres://from-file/db")
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		vars    map[string]string
		wantErr string // a substring the message must contain
	}{
		{
			name:    "missing secret outside demo mode names FIELDSYNC_JWT_SECRET",
			vars:    map[string]string{},
			wantErr: "FIELDSYNC_JWT_SECRET",
		},
		{
			name:    "secret of 31 bytes",
			vars:    map[string]string{"FIELDSYNC_JWT_SECRET": secret32[:31]},
			wantErr: "at least 32 bytes",
		},
		{
			name:    "short secret by flag even in demo mode",
			args:    []string{"--demo", "--jwt-secret", "tiny"},
			vars:    map[string]string{},
			wantErr: "at least 32 bytes",
		},
		{
			name:    "bad --log-format",
			args:    []string{"--log-format", "xml"},
			vars:    withSecret(nil),
			wantErr: "log-format",
		},
		{
			name:    "bad FIELDSYNC_LOG_FORMAT",
			vars:    withSecret(map[string]string{"FIELDSYNC_LOG_FORMAT": "JSON"}),
			wantErr: "log-format",
		},
		{
			name:    "bad --log-level",
			args:    []string{"--log-level", "verbose"},
			vars:    withSecret(nil),
			wantErr: "log-level",
		},
		{
			name:    "body limit below 1024",
			args:    []string{"--body-limit", "10"},
			vars:    withSecret(nil),
			wantErr: "body-limit",
		},
		{
			name:    "body limit not a number",
			vars:    withSecret(map[string]string{"FIELDSYNC_BODY_LIMIT": "lots"}),
			wantErr: "body-limit",
		},
		{
			name:    "tombstone retention under a day",
			args:    []string{"--tombstone-retention", "2h"},
			vars:    withSecret(nil),
			wantErr: "tombstone-retention",
		},
		{
			name:    "location retention under a day",
			args:    []string{"--location-retention", "2h"},
			vars:    withSecret(nil),
			wantErr: "location-retention",
		},
		{
			name:    "location retention not a duration",
			vars:    withSecret(map[string]string{"FIELDSYNC_LOCATION_RETENTION": "180 days"}),
			wantErr: "location-retention",
		},
		{
			name:    "tombstone retention not a duration",
			vars:    withSecret(map[string]string{"FIELDSYNC_TOMBSTONE_RETENTION": "90 days"}),
			wantErr: "tombstone-retention",
		},
		{
			// A deadline at the write timeout would end in an answer
			// nobody receives.
			name:    "push timeout at the write timeout",
			args:    []string{"--push-timeout", "60s"},
			vars:    withSecret(nil),
			wantErr: "push-timeout",
		},
		{
			name:    "user mutation rate negative",
			args:    []string{"--user-mutation-rate", "-1"},
			vars:    withSecret(nil),
			wantErr: "user-mutation-rate",
		},
		{
			name:    "user mutation rate not a number",
			vars:    withSecret(map[string]string{"FIELDSYNC_USER_MUTATION_RATE": "100/s"}),
			wantErr: "user-mutation-rate",
		},
		{
			// A push of 1,000 would never fit in the budget.
			name:    "user mutation burst below the largest push",
			args:    []string{"--user-mutation-burst", "999"},
			vars:    withSecret(nil),
			wantErr: "user-mutation-burst",
		},
		{
			name:    "request timeout not a duration",
			vars:    withSecret(map[string]string{"FIELDSYNC_REQUEST_TIMEOUT": "10"}),
			wantErr: "request-timeout",
		},
		{
			name:    "request timeout under a second",
			args:    []string{"--request-timeout", "200ms"},
			vars:    withSecret(nil),
			wantErr: "request-timeout",
		},
		{
			name:    "positional argument",
			args:    []string{"extra"},
			vars:    withSecret(nil),
			wantErr: `unexpected argument "extra"`,
		},
		{
			name:    "unknown flag",
			args:    []string{"--no-such-flag"},
			vars:    withSecret(nil),
			wantErr: "no-such-flag",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.vars)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want an error containing %q", tt.args, c, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadDemoNeedsNoSecret(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		vars map[string]string
	}{
		{name: "--demo flag", args: []string{"--demo"}},
		{name: "FIELDSYNC_DEMO=true", vars: map[string]string{"FIELDSYNC_DEMO": "true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.vars)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !c.Demo || c.JWTSecret != "" {
				t.Errorf("got Demo=%v JWTSecret=%q, want Demo=true and no secret (serve generates one)", c.Demo, c.JWTSecret)
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	_, err := load(t, []string{"-h"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("got %v, want flag.ErrHelp so serve can exit quietly", err)
	}
}

func TestLoadTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []netip.Prefix
		wantErr bool
	}{
		{name: "unset", value: "", want: nil},
		{name: "IPv4 CIDR", value: "10.0.0.0/8", want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "bare IPv4 is a /32", value: "192.168.1.7", want: []netip.Prefix{netip.MustParsePrefix("192.168.1.7/32")}},
		{name: "bare IPv6 is a /128", value: "::1", want: []netip.Prefix{netip.MustParsePrefix("::1/128")}},
		{name: "IPv6 CIDR", value: "fd00::/8", want: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}},
		{
			name:  "list with spaces and empty items",
			value: " 10.0.0.0/8, ,172.16.0.1 ,",
			want:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.1/32")},
		},
		{name: "not an address", value: "proxy.internal", wantErr: true},
		{name: "IPv4 prefix too long", value: "10.0.0.0/33", wantErr: true},
		{name: "octet out of range", value: "300.1.1.1", wantErr: true},
		{name: "one bad entry sinks the list", value: "10.0.0.0/8,nope", wantErr: true},
		{name: "missing prefix length", value: "10.0.0.0/", wantErr: true},
	}
	for _, tt := range tests {
		for _, via := range []string{"flag", "env"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				var args []string
				vars := withSecret(nil)
				if via == "flag" {
					args = []string{"--trusted-proxies", tt.value}
				} else {
					vars["FIELDSYNC_TRUSTED_PROXIES"] = tt.value
				}
				c, err := load(t, args, vars)
				if tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), "trusted-proxies") {
						t.Fatalf("got proxies %v, error %v; want an error naming trusted-proxies", c.TrustedProxies, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if !reflect.DeepEqual(c.TrustedProxies, tt.want) {
					t.Errorf("got %v, want %v", c.TrustedProxies, tt.want)
				}
			})
		}
	}
}

func TestEnvListsEveryOption(t *testing.T) {
	got := map[string]bool{}
	for _, name := range config.Env() {
		if got[name] {
			t.Errorf("Env() lists %s twice", name)
		}
		got[name] = true
	}
	for _, o := range config.Options {
		if !strings.HasPrefix(o.Env, "FIELDSYNC_") {
			t.Errorf("option --%s: env %q does not start with FIELDSYNC_", o.Flag, o.Env)
		}
		if !got[o.Env] {
			t.Errorf("Env() misses %s (--%s)", o.Env, o.Flag)
		}
		if o.File && !got[o.Env+"_FILE"] {
			t.Errorf("Env() misses %s_FILE", o.Env)
		}
	}
}

// TestReadmeDocumentsEveryOption keeps README.md's configuration table in
// step with Options: each option needs a row naming its flag, its
// environment variable and its default.
func TestReadmeDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	// rows maps a flag to the cells of its row: flag, environment,
	// default, meaning.
	rows := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 4 {
			t.Errorf("README.md configuration row has %d cells, want 4 (flag, environment, default, meaning):\n%s", len(cells), line)
			continue
		}
		rows[strings.Trim(cells[0], "`-")] = cells
	}
	for _, o := range config.Options {
		r, ok := rows[o.Flag]
		if !ok {
			t.Errorf("README.md has no configuration row for `--%s`", o.Flag)
			continue
		}
		env := "`" + o.Env + "`"
		if o.File {
			env = "`" + o.Env + "`, `" + o.Env + "_FILE`"
		}
		if r[1] != env {
			t.Errorf("README row for --%s: got environment %s, want %s", o.Flag, r[1], env)
		}
		if o.Default != "" && !strings.HasPrefix(r[2], "`"+o.Default+"`") {
			t.Errorf("README row for --%s: got default %s, want `%s`", o.Flag, r[2], o.Default)
		}
		if o.Default == "" && strings.HasPrefix(r[2], "`") {
			t.Errorf("README row for --%s: got default %s, but the option has none", o.Flag, r[2])
		}
	}
	for name := range rows {
		if !slices.ContainsFunc(config.Options, func(o config.Option) bool { return o.Flag == name }) {
			t.Errorf("README.md documents --%s, which is not in config.Options", name)
		}
	}
}

func TestLoadCORSAndHSTS(t *testing.T) {
	c, err := load(t, []string{"--cors-origins", "https://app.example, http://localhost:5173", "--hsts-max-age", "8760h"}, withSecret(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []string{"https://app.example", "http://localhost:5173"}; !slices.Equal(c.CORSOrigins, want) {
		t.Errorf("CORSOrigins = %q, want %q", c.CORSOrigins, want)
	}
	if c.HSTSMaxAge != 8760*time.Hour {
		t.Errorf("HSTSMaxAge = %v, want 8760h", c.HSTSMaxAge)
	}
	for _, tt := range []struct{ flag, value string }{
		{"cors-origins", "*"},
		{"cors-origins", "app.example"},
		{"cors-origins", "https://app.example/"},
		{"cors-origins", "https://app.example/path"},
		{"cors-origins", "ftp://app.example"},
		{"hsts-max-age", "soon"},
		{"hsts-max-age", "-1h"},
	} {
		_, err := load(t, []string{"--" + tt.flag, tt.value}, withSecret(nil))
		if err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("--%s %q: error %v, want one naming %s", tt.flag, tt.value, err, tt.flag)
		}
	}
}
