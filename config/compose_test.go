package config_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fieldsync/fieldsync/config"
)

// composeFile is the part of docker-compose.yml the tests read. Compose
// accepts two spellings for environment and depends_on, so those stay raw.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]any            `yaml:"secrets"`
}

type composeService struct {
	Image       string       `yaml:"image"`
	Build       any          `yaml:"build"`
	Environment yaml.Node    `yaml:"environment"`
	DependsOn   yaml.Node    `yaml:"depends_on"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
	Volumes     []string     `yaml:"volumes"`
	Ports       []string     `yaml:"ports"`
	Secrets     []string     `yaml:"secrets"`
}

type healthcheck struct {
	Test    any  `yaml:"test"`
	Disable bool `yaml:"disable"`
}

// command returns the healthcheck's command as words, dropping the CMD /
// CMD-SHELL marker.
func (h *healthcheck) command() []string {
	switch v := h.Test.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var words []string
		for _, w := range v {
			words = append(words, fmt.Sprint(w))
		}
		if len(words) > 0 && (words[0] == "CMD" || words[0] == "CMD-SHELL") {
			if words[0] == "CMD-SHELL" && len(words) == 2 {
				return strings.Fields(words[1])
			}
			words = words[1:]
		}
		return words
	}
	return nil
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read docker-compose.yml: %v", err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	return f
}

func service(t *testing.T, f composeFile, name string) composeService {
	t.Helper()
	s, ok := f.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// environment decodes either `KEY: value` or `- KEY=value`.
func environment(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.MappingNode:
		var m map[string]*string
		if err := n.Decode(&m); err != nil {
			t.Fatalf("decode environment: %v", err)
		}
		for k, v := range m {
			if v != nil {
				env[k] = *v
			} else {
				env[k] = ""
			}
		}
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			t.Fatalf("decode environment: %v", err)
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	default:
		t.Fatalf("environment at line %d is neither a mapping nor a list", n.Line)
	}
	return env
}

// dependsOn decodes either `- svc` (condition service_started) or
// `svc: {condition: …}` into service → condition.
func dependsOn(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	deps := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			t.Fatalf("decode depends_on: %v", err)
		}
		for _, s := range list {
			deps[s] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			t.Fatalf("decode depends_on: %v", err)
		}
		for s, d := range m {
			c := d.Condition
			if c == "" {
				c = "service_started"
			}
			deps[s] = c
		}
	default:
		t.Fatalf("depends_on at line %d is neither a list nor a mapping", n.Line)
	}
	return deps
}

func TestComposeSetsOnlyVariablesTheServerReads(t *testing.T) {
	f := readCompose(t)
	env := environment(t, service(t, f, "fieldsync").Environment)
	known := map[string]bool{"FIELDSYNC_ADMIN_PASSWORD": true} // read by org/user create
	for _, name := range config.Env() {
		known[name] = true
	}
	for name := range env {
		if strings.HasPrefix(name, "FIELDSYNC_") && !known[name] {
			t.Errorf("fieldsync service sets %s, which the server never reads (known: %s)", name, strings.Join(config.Env(), ", "))
		}
	}
	if _, ok := env["FIELDSYNC_DATABASE_URL"]; !ok {
		t.Errorf("fieldsync service does not set FIELDSYNC_DATABASE_URL; it would fall back to SQLite inside the container")
	}
	// A secret in a plain variable shows in `docker inspect` and in the
	// environment of every process in the container; a mounted secret file
	// does not.
	if _, direct := env["FIELDSYNC_JWT_SECRET"]; direct {
		t.Errorf("fieldsync service passes FIELDSYNC_JWT_SECRET as a plain variable; mount it as a secret and set FIELDSYNC_JWT_SECRET_FILE")
	}
	path, fromFile := env["FIELDSYNC_JWT_SECRET_FILE"]
	if !fromFile {
		t.Fatalf("fieldsync service does not set FIELDSYNC_JWT_SECRET_FILE; serve refuses to start without a secret")
	}
	name, ok := strings.CutPrefix(path, "/run/secrets/")
	if !ok {
		t.Fatalf("FIELDSYNC_JWT_SECRET_FILE = %q, want a compose secret under /run/secrets/", path)
	}
	if !slices.Contains(service(t, f, "fieldsync").Secrets, name) {
		t.Errorf("fieldsync service reads /run/secrets/%s but does not list the secret %q", name, name)
	}
	if _, ok := f.Secrets[name]; !ok {
		t.Errorf("secret %q is not declared under top-level secrets", name)
	}
}

// pinned reports whether an image reference names one exact release: a
// digest, or a tag with a patch version. "postgres:16" or "alpine" move
// under you.
func pinned(image string) bool {
	return strings.Contains(image, "@sha256:") || regexp.MustCompile(`:[^:/]*\d+\.\d+\.\d+[^:/]*$`).MatchString(image)
}

// testedPostgresMajor is the PostgreSQL CI runs against; compose must run
// the same.
const testedPostgresMajor = "15"

func TestComposePostgres(t *testing.T) {
	f := readCompose(t)
	pg := service(t, f, "postgres")
	// PostgreSQL numbers releases major.minor: 15.19 is one exact release.
	release := regexp.MustCompile(`^postgres:` + testedPostgresMajor + `\.\d+(-[a-z0-9]+)?(@sha256:[0-9a-f]+)?$`)
	if !release.MatchString(pg.Image) {
		t.Errorf("postgres image: got %q, want postgres:%s.N, the major version CI tests, pinned to a release", pg.Image, testedPostgresMajor)
	}
	env := environment(t, pg.Environment)
	for _, name := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		if env[name] == "" {
			t.Errorf("postgres service: %s is not set", name)
		}
	}
	if pg.Healthcheck == nil || pg.Healthcheck.Disable {
		t.Errorf("postgres service has no healthcheck")
	} else if cmd := pg.Healthcheck.command(); len(cmd) == 0 || cmd[0] != "pg_isready" {
		t.Errorf("postgres healthcheck: got %q, want a pg_isready command", cmd)
	}
	var named bool
	for _, v := range pg.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if dst != "/var/lib/postgresql/data" {
			continue
		}
		if _, ok := f.Volumes[src]; ok {
			named = true
		} else {
			t.Errorf("postgres data volume %q is not declared under top-level volumes", src)
		}
	}
	if !named {
		t.Errorf("postgres service: got volumes %q, want a named volume on /var/lib/postgresql/data", pg.Volumes)
	}
}

func TestComposeFieldsync(t *testing.T) {
	f := readCompose(t)
	fs := service(t, f, "fieldsync")
	if fs.Build == nil {
		t.Errorf("fieldsync service has no build; want `build: .`")
	}
	if got := dependsOn(t, fs.DependsOn)["postgres"]; got != "service_healthy" {
		t.Errorf("fieldsync depends_on postgres: got condition %q, want service_healthy", got)
	}
	if !slices.Contains(fs.Ports, "8080:8080") {
		t.Errorf("fieldsync ports: got %q, want 8080:8080", fs.Ports)
	}
	if fs.Healthcheck == nil || fs.Healthcheck.Disable {
		t.Fatalf("fieldsync service has no healthcheck")
	}
	// Healthy means ready to serve: the database answers and the schema
	// is current. /healthz only says the process runs.
	cmd := fs.Healthcheck.command()
	if !strings.Contains(strings.Join(cmd, " "), "://127.0.0.1:8080/readyz") &&
		!strings.Contains(strings.Join(cmd, " "), "://localhost:8080/readyz") {
		t.Errorf("fieldsync healthcheck: got %q, want a request to :8080/readyz inside the container", cmd)
	}
	// The healthcheck runs inside the image: its program must exist there.
	if len(cmd) > 0 && (cmd[0] == "wget" || cmd[0] == "curl") {
		final := finalStage(t)
		if final == "scratch" || strings.Contains(final, "distroless") {
			t.Errorf("fieldsync healthcheck calls %s but the image's final stage is %s, which has no %s", cmd[0], final, cmd[0])
		}
		if cmd[0] == "curl" && !strings.Contains(readDockerfile(t), "curl") {
			t.Errorf("fieldsync healthcheck calls curl but the Dockerfile never installs it")
		}
	}
}

func TestComposeDatabaseURLMatchesPostgres(t *testing.T) {
	f := readCompose(t)
	pgEnv := environment(t, service(t, f, "postgres").Environment)
	raw := environment(t, service(t, f, "fieldsync").Environment)["FIELDSYNC_DATABASE_URL"]
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("FIELDSYNC_DATABASE_URL %q: %v", raw, err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		t.Errorf("FIELDSYNC_DATABASE_URL scheme: got %q, want postgres", u.Scheme)
	}
	if got, want := u.Hostname(), "postgres"; got != want {
		t.Errorf("FIELDSYNC_DATABASE_URL host: got %q, want the service name %q", got, want)
	}
	if p := u.Port(); p != "" && p != "5432" {
		t.Errorf("FIELDSYNC_DATABASE_URL port: got %q, want 5432", p)
	}
	if got, want := u.User.Username(), pgEnv["POSTGRES_USER"]; got != want {
		t.Errorf("FIELDSYNC_DATABASE_URL user: got %q, want POSTGRES_USER %q", got, want)
	}
	if got, _ := u.User.Password(); got != pgEnv["POSTGRES_PASSWORD"] {
		t.Errorf("FIELDSYNC_DATABASE_URL password: got %q, want POSTGRES_PASSWORD %q", got, pgEnv["POSTGRES_PASSWORD"])
	}
	if got, want := strings.TrimPrefix(u.Path, "/"), pgEnv["POSTGRES_DB"]; got != want {
		t.Errorf("FIELDSYNC_DATABASE_URL database: got %q, want POSTGRES_DB %q", got, want)
	}
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	return string(b)
}

// finalStage returns the image of the Dockerfile's last FROM.
func finalStage(t *testing.T) string {
	t.Helper()
	froms := regexp.MustCompile(`(?mi)^FROM\s+(?:--\S+\s+)*(\S+)`).FindAllStringSubmatch(readDockerfile(t), -1)
	if len(froms) == 0 {
		t.Fatalf("Dockerfile has no FROM")
	}
	return froms[len(froms)-1][1]
}

func TestDockerfile(t *testing.T) {
	text := readDockerfile(t)
	// Join continuation lines so one RUN reads as one line.
	joined := strings.ReplaceAll(text, "\\\n", " ")
	var build string
	cgoOff := false // set by ENV in the stage that builds, or on the RUN
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case regexp.MustCompile(`(?i)^FROM\s`).MatchString(line):
			cgoOff = false
		case regexp.MustCompile(`(?i)^ENV\s.*\bCGO_ENABLED[= ]0\b`).MatchString(line):
			cgoOff = true
		case strings.HasPrefix(line, "RUN") && strings.Contains(line, "go build"):
			build = line
			if strings.Contains(line, "CGO_ENABLED=0") {
				cgoOff = true
			}
			if !cgoOff {
				t.Errorf("Dockerfile builds without CGO_ENABLED=0 (neither on the RUN nor by ENV in its stage):\n%s", line)
			}
		}
	}
	if build == "" {
		t.Fatalf("Dockerfile has no RUN … go build")
	}
	for _, want := range []string{"-trimpath", "./cmd/fieldsync", "-X main.version="} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile go build line lacks %q:\n%s", want, strings.TrimSpace(build))
		}
	}
	if froms := regexp.MustCompile(`(?mi)^FROM\s+`).FindAllStringIndex(text, -1); len(froms) < 2 {
		t.Errorf("Dockerfile has %d stage(s), want a multi-stage build", len(froms))
	}
	for _, want := range []string{"EXPOSE 8080", `ENTRYPOINT ["/fieldsync"]`, `CMD ["serve"]`} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+(?:--\S+\s+)*(\S+)`).FindAllStringSubmatch(text, -1) {
		if !pinned(m[1]) {
			t.Errorf("Dockerfile FROM %s floats; pin a release (a patch-version tag or a digest)", m[1])
		}
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK\s.*://(127\.0\.0\.1|localhost):8080/readyz`).MatchString(joined) {
		t.Errorf("Dockerfile has no HEALTHCHECK calling /readyz")
	}
	if !regexp.MustCompile(`(?m)^VOLUME\s.*/data`).MatchString(text) {
		t.Errorf("Dockerfile declares no VOLUME /data; the SQLite file would die with the container")
	}
	if m := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(text, -1); len(m) == 0 {
		t.Errorf("Dockerfile never sets USER; the server must not run as root")
	} else if u := m[len(m)-1][1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("Dockerfile's last USER is %s; want a non-root user", u)
	}
}
