package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
)

// expectProblem fails the test unless res is a problem+json document with
// the wanted status and code. A 401 must also carry a Bearer challenge.
func expectProblem(t *testing.T, res *apitest.Response, status int, code string) api.Problem {
	t.Helper()
	apitest.Expect(t, res, status)
	p := res.Problem(t)
	if p.Code != code {
		t.Fatalf("%s %s: problem code %q, want %q; body %s", res.Request.Method, res.Request.URL.Path, p.Code, code, res.Body)
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if status == http.StatusUnauthorized {
		if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
		}
	}
	return p
}

// problemFields lists the fields a problem names.
func problemFields(p api.Problem) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

// expectFields fails unless the problem names every wanted field.
func expectFields(t *testing.T, p api.Problem, want ...string) {
	t.Helper()
	got := problemFields(p)
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("problem fields %q, want them to include %q (detail %q)", got, w, p.Detail)
		}
	}
}

func tryLogin(env *apitest.Env, email, password string, header http.Header) *apitest.Response {
	env.T.Helper()
	return env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Header: header, Body: map[string]any{
		"email": email, "password": password, "device_id": uuid.NewString(),
	}})
}

func tryRefresh(env *apitest.Env, token string) *apitest.Response {
	env.T.Helper()
	return env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/refresh", Body: map[string]string{"refresh_token": token}})
}

func getMe(env *apitest.Env, access string) *apitest.Response {
	env.T.Helper()
	return env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/me", Token: access})
}

type tokenPair struct {
	AccessToken  string         `json:"access_token"`
	RefreshToken string         `json:"refresh_token"`
	TokenType    string         `json:"token_type"`
	ExpiresIn    int            `json:"expires_in"`
	User         map[string]any `json:"user"`
}

func TestLoginSuccess(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{
		// Emails match however they are typed.
		"email": "  Rep1@Demo.TEST ", "password": demo.Password, "device_id": uuid.NewString(),
		"device_name": "Riley's phone", "platform": "android",
	}})
	apitest.Expect(t, res, http.StatusOK)
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	var tp tokenPair
	res.JSON(t, &tp)
	if tp.TokenType != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", tp.TokenType)
	}
	if tp.ExpiresIn != 900 {
		t.Errorf("expires_in = %d, want 900", tp.ExpiresIn)
	}
	if tp.AccessToken == "" || tp.RefreshToken == "" || tp.AccessToken == tp.RefreshToken {
		t.Errorf("access %q, refresh %q: want two different non-empty tokens", tp.AccessToken, tp.RefreshToken)
	}
	for field, want := range map[string]any{
		"email": "rep1@demo.test", "name": "Riley Park", "role": "rep", "active": true, "time_zone": "America/Chicago",
	} {
		if got := tp.User[field]; got != want {
			t.Errorf("user.%s = %v, want %v", field, got, want)
		}
	}
	for _, field := range []string{"id", "org_id", "team_id", "created_at", "updated_at"} {
		if s, _ := tp.User[field].(string); s == "" {
			t.Errorf("user.%s = %v, want it set", field, tp.User[field])
		}
	}
	if strings.Contains(strings.ToLower(string(res.Body)), "password") {
		t.Errorf("login response mentions a password: %s", res.Body)
	}

	// The access token works, and /v1/me names the same user.
	m := getMe(env, tp.AccessToken)
	apitest.Expect(t, m, http.StatusOK)
	var got map[string]any
	m.JSON(t, &got)
	if got["id"] != tp.User["id"] || got["email"] != "rep1@demo.test" {
		t.Errorf("/v1/me = %v, want the logged-in user %v", got, tp.User["id"])
	}
}

func TestLoginRefusals(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	rep3 := env.Login("rep3@demo.test")
	res := env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + rep3.UserID.String(), Token: admin.Access,
		Body: map[string]any{"active": false}})
	apitest.Expect(t, res, http.StatusOK)

	wrong := tryLogin(env, "rep1@demo.test", "not-the-password", nil)
	want := expectProblem(t, wrong, http.StatusUnauthorized, "unauthorized")

	tests := []struct {
		name            string
		email, password string
	}{
		// Unknown emails must be indistinguishable from wrong passwords.
		{"unknown email", "nobody@demo.test", demo.Password},
		{"wrong password again", "rep2@demo.test", "demo-pass-12345"},
		{"empty-looking password", "rep2@demo.test", " "},
		// A deactivated user gets the same answer, even with the right password.
		{"deactivated user", "rep3@demo.test", demo.Password},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tryLogin(env, tt.email, tt.password, nil)
			got := expectProblem(t, res, http.StatusUnauthorized, "unauthorized")
			if got.Detail != want.Detail || got.Title != want.Title || got.Type != want.Type || len(got.Errors) != 0 {
				t.Errorf("got problem %+v, want the same as for a wrong password %+v", got, want)
			}
			if g, w := res.Header.Get("WWW-Authenticate"), wrong.Header.Get("WWW-Authenticate"); g != w {
				t.Errorf("WWW-Authenticate = %q, want %q", g, w)
			}
		})
	}
}

func TestLoginValidation(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"device_id not a UUID", map[string]any{"email": "rep1@demo.test", "password": demo.Password, "device_id": "phone-1"}, "device_id"},
		{"device_id missing", map[string]any{"email": "rep1@demo.test", "password": demo.Password}, "device_id"},
		{"device_id without dashes", map[string]any{"email": "rep1@demo.test", "password": demo.Password, "device_id": strings.ReplaceAll(uuid.NewString(), "-", "")}, "device_id"},
		{"email missing", map[string]any{"password": demo.Password, "device_id": uuid.NewString()}, "email"},
		{"password missing", map[string]any{"email": "rep1@demo.test", "device_id": uuid.NewString()}, "password"},
		{"platform unknown", map[string]any{"email": "rep1@demo.test", "password": demo.Password, "device_id": uuid.NewString(), "platform": "symbian"}, "platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: tt.body})
			p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
			expectFields(t, p, tt.field)
		})
	}
}

// fromAddr makes a login look like it comes from a client address, as
// told by a trusted proxy on loopback (see behindProxy).
func fromAddr(addr string) http.Header {
	return http.Header{"X-Forwarded-For": {addr}}
}

// behindProxy trusts loopback as a proxy, so fromAddr picks the client.
func behindProxy(d *api.Deps) {
	d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

func retryAfter(t *testing.T, res *apitest.Response) int {
	t.Helper()
	n, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || n <= 0 {
		t.Fatalf("Retry-After = %q, want a positive number of seconds", res.Header.Get("Retry-After"))
	}
	return n
}

func TestLoginLockoutPerEmailAndAddress(t *testing.T) {
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		behindProxy(d)
		d.LoginPolicy = auth.LoginPolicy{PairFree: 3, EmailFree: 100, BaseDelay: time.Minute, MaxDelay: 4 * time.Minute, Forget: time.Hour}
	}})
	attacker, owner := fromAddr("203.0.113.7"), fromAddr("198.51.100.20")
	// Successful logins do not count towards the limit.
	for range 4 {
		apitest.Expect(t, tryLogin(env, "rep1@demo.test", demo.Password, attacker), http.StatusOK)
	}
	// Three failures, spelled differently: the limit is per normalised email.
	for _, email := range []string{"rep1@demo.test", "REP1@DEMO.TEST", " Rep1@demo.test "} {
		expectProblem(t, tryLogin(env, email, "wrong-password-1", attacker), http.StatusUnauthorized, "unauthorized")
	}
	// From that address the next attempt is refused, even with the right password.
	res := tryLogin(env, "rep1@demo.test", demo.Password, attacker)
	expectProblem(t, res, http.StatusTooManyRequests, "rate_limited")
	if n := retryAfter(t, res); n > 60 {
		t.Errorf("Retry-After = %d, want at most 60 after the first lockout", n)
	}
	// The owner, from an address that did not fail, still gets in; so do
	// other users behind the attacker's address.
	apitest.Expect(t, tryLogin(env, "rep1@demo.test", demo.Password, owner), http.StatusOK)
	apitest.Expect(t, tryLogin(env, "rep2@demo.test", demo.Password, attacker), http.StatusOK)

	env.Clock.Advance(30 * time.Second)
	expectProblem(t, tryLogin(env, "rep1@demo.test", demo.Password, attacker), http.StatusTooManyRequests, "rate_limited")

	// After the delay one more guess is allowed; failing it doubles the delay.
	env.Clock.Advance(31 * time.Second)
	expectProblem(t, tryLogin(env, "rep1@demo.test", "wrong-password-1", attacker), http.StatusUnauthorized, "unauthorized")
	res = tryLogin(env, "rep1@demo.test", demo.Password, attacker)
	expectProblem(t, res, http.StatusTooManyRequests, "rate_limited")
	if n := retryAfter(t, res); n <= 60 || n > 120 {
		t.Errorf("Retry-After = %d, want in (60, 120] after the second lockout", n)
	}
	env.Clock.Advance(2*time.Minute + time.Second)
	apitest.Expect(t, tryLogin(env, "rep1@demo.test", demo.Password, attacker), http.StatusOK)
}

// TestLoginLockoutPerEmailAcrossAddresses: guesses for one email from many
// addresses add up; past the loose per-email limit, every address that has
// failed for that email waits, but one that has not still gets in.
func TestLoginLockoutPerEmailAcrossAddresses(t *testing.T) {
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		behindProxy(d)
		d.LoginPolicy = auth.LoginPolicy{PairFree: 3, EmailFree: 4, BaseDelay: time.Minute, MaxDelay: 4 * time.Minute, Forget: time.Hour}
	}})
	for i := range 4 {
		expectProblem(t, tryLogin(env, "rep1@demo.test", "wrong-password-1", fromAddr("203.0.113."+strconv.Itoa(10+i))),
			http.StatusUnauthorized, "unauthorized")
	}
	// Each of those addresses failed once only (under the pair limit), but
	// the email as a whole is over its limit.
	res := tryLogin(env, "rep1@demo.test", demo.Password, fromAddr("203.0.113.10"))
	expectProblem(t, res, http.StatusTooManyRequests, "rate_limited")
	retryAfter(t, res)
	// A fresh address gets one try: a wrong password, and it too must wait.
	expectProblem(t, tryLogin(env, "rep1@demo.test", "wrong-password-1", fromAddr("203.0.113.50")), http.StatusUnauthorized, "unauthorized")
	expectProblem(t, tryLogin(env, "rep1@demo.test", demo.Password, fromAddr("203.0.113.50")), http.StatusTooManyRequests, "rate_limited")
	// The owner's address never failed: the right password gets in.
	apitest.Expect(t, tryLogin(env, "rep1@demo.test", demo.Password, fromAddr("198.51.100.20")), http.StatusOK)
	// Other emails are unaffected.
	apitest.Expect(t, tryLogin(env, "rep2@demo.test", demo.Password, fromAddr("203.0.113.10")), http.StatusOK)
}

// TestLoginFailuresFromOneAddressDoNotBlockOthers: many failures for many
// emails from one address (an office behind one NAT) lock out only the
// emails that failed there.
func TestLoginFailuresFromOneAddressDoNotBlockOthers(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	for i := range 40 {
		expectProblem(t, tryLogin(env, "nobody"+strconv.Itoa(i)+"@demo.test", "wrong-password-1", nil), http.StatusUnauthorized, "unauthorized")
	}
	apitest.Expect(t, tryLogin(env, "admin@demo.test", demo.Password, nil), http.StatusOK)
}

func TestLoginLockoutIgnoresSpoofedForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		// want is the status of the fourth attempt, each from a different
		// claimed X-Forwarded-For address.
		want int
	}{
		{"no trusted proxies", nil, http.StatusTooManyRequests},
		{"trusted proxies elsewhere", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, http.StatusTooManyRequests},
		// Control: when the peer is a trusted proxy the header is believed,
		// so each claimed client has its own budget.
		{"peer is a trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
				d.LoginPolicy = auth.LoginPolicy{PairFree: 3, EmailFree: 100, BaseDelay: time.Minute, MaxDelay: time.Minute, Forget: time.Hour}
				d.TrustedProxies = tt.trusted
			}})
			for i := range 3 {
				expectProblem(t, tryLogin(env, "rep1@demo.test", "wrong-password-1", fromAddr("203.0.113."+strconv.Itoa(10+i))), http.StatusUnauthorized, "unauthorized")
			}
			res := tryLogin(env, "rep1@demo.test", "wrong-password-1", fromAddr("203.0.113.13"))
			if res.StatusCode != tt.want {
				t.Fatalf("fourth attempt: status %d, want %d; body %s", res.StatusCode, tt.want, res.Body)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")

	res := tryRefresh(env, s.Refresh)
	apitest.Expect(t, res, http.StatusOK)
	var next tokenPair
	res.JSON(t, &next)
	if next.RefreshToken == "" || next.RefreshToken == s.Refresh || next.AccessToken == "" || next.AccessToken == s.Access {
		t.Fatalf("refresh returned %+v, want a new pair", next)
	}
	if next.TokenType != "Bearer" || next.ExpiresIn != 900 || next.User["email"] != "rep1@demo.test" {
		t.Errorf("refresh returned token_type %q, expires_in %d, user %v", next.TokenType, next.ExpiresIn, next.User["email"])
	}
	apitest.Expect(t, getMe(env, next.AccessToken), http.StatusOK)

	// The old refresh token was used already: someone holds a copy. The
	// whole session ends.
	expectProblem(t, tryRefresh(env, s.Refresh), http.StatusUnauthorized, "unauthorized")
	for _, c := range []struct{ name, token string }{
		{"new access token", next.AccessToken},
		{"first access token", s.Access},
	} {
		t.Run(c.name, func(t *testing.T) {
			expectProblem(t, getMe(env, c.token), http.StatusUnauthorized, "unauthorized")
		})
	}
	expectProblem(t, tryRefresh(env, next.RefreshToken), http.StatusUnauthorized, "unauthorized")

	// Other sessions of the same user are unaffected.
	other := env.Login("rep1@demo.test")
	apitest.Expect(t, tryRefresh(env, other.Refresh), http.StatusOK)
}

func TestRefreshRefusals(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"unknown token", map[string]string{"refresh_token": "fsr_" + strings.Repeat("A", 43)}, http.StatusUnauthorized, "unauthorized"},
		{"an access token", map[string]string{"refresh_token": s.Access}, http.StatusUnauthorized, "unauthorized"},
		{"missing token", map[string]string{}, http.StatusUnprocessableEntity, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/refresh", Body: tt.body})
			expectProblem(t, res, tt.status, tt.code)
		})
	}
	// None of that touched the real session.
	apitest.Expect(t, getMe(env, s.Access), http.StatusOK)

	t.Run("expired token", func(t *testing.T) {
		env.Clock.Advance(auth.RefreshTTL + time.Minute)
		expectProblem(t, tryRefresh(env, s.Refresh), http.StatusUnauthorized, "unauthorized")
	})
}

func TestLogoutRevokes(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")
	other := env.Login("rep1@demo.test") // another device

	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/logout", Token: s.Access})
	apitest.Expect(t, res, http.StatusNoContent)

	expectProblem(t, getMe(env, s.Access), http.StatusUnauthorized, "unauthorized")
	expectProblem(t, tryRefresh(env, s.Refresh), http.StatusUnauthorized, "unauthorized")
	expectProblem(t, env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/logout", Token: s.Access}),
		http.StatusUnauthorized, "unauthorized")
	// Only that device's session ended.
	apitest.Expect(t, getMe(env, other.Access), http.StatusOK)
}

func TestLoginAgainOnSameDeviceRevokesEarlierSession(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	device := uuid.New()
	first := env.LoginDevice("rep1@demo.test", device)
	elsewhere := env.Login("rep1@demo.test")
	teammate := env.LoginDevice("rep2@demo.test", device) // another user on the shared device
	second := env.LoginDevice("rep1@demo.test", device)

	expectProblem(t, getMe(env, first.Access), http.StatusUnauthorized, "unauthorized")
	expectProblem(t, tryRefresh(env, first.Refresh), http.StatusUnauthorized, "unauthorized")
	for _, s := range []apitest.Session{second, elsewhere, teammate} {
		apitest.Expect(t, getMe(env, s.Access), http.StatusOK)
	}
	apitest.Expect(t, tryRefresh(env, second.Refresh), http.StatusOK)
}

// claimsOf reads the claims of a token the server issued.
func claimsOf(t *testing.T, token string) auth.Claims {
	t.Helper()
	var c auth.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatalf("parse issued token: %v", err)
	}
	return c
}

// sign signs claims with method and key, under kid when it is not empty.
func signClaims(t *testing.T, method jwt.SigningMethod, key any, kid string, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestForgedAccessTokens(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")
	base := claimsOf(t, s.Access)
	key := []byte(apitest.Secret)
	kid := auth.KeyID(apitest.Secret)
	now := env.Clock.Now()
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	with := func(edit func(*auth.Claims)) auth.Claims {
		c := base
		c.Audience = append(jwt.ClaimStrings(nil), base.Audience...)
		edit(&c)
		return c
	}
	parts := strings.Split(s.Access, ".")

	tests := []struct {
		name   string
		header string // the whole Authorization header
		want   int
	}{
		// Control: the same claims signed properly are accepted, so each
		// refusal below is for the reason the case names.
		{"control: re-signed with the right key", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, base), http.StatusOK},
		{"control: the issued token", "Bearer " + s.Access, http.StatusOK},

		{"alg none", "Bearer " + signClaims(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, base), http.StatusUnauthorized},
		{"alg none, empty signature stripped", "Bearer " + b64url(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`) + "." + parts[1] + ".", http.StatusUnauthorized},
		{"HS512 with the right key", "Bearer " + signClaims(t, jwt.SigningMethodHS512, key, kid, base), http.StatusUnauthorized},
		{"HS384 with the right key", "Bearer " + signClaims(t, jwt.SigningMethodHS384, key, kid, base), http.StatusUnauthorized},
		{"RS256 header, garbage signature", "Bearer " + b64url(`{"alg":"RS256","typ":"JWT","kid":"`+kid+`"}`) + "." + parts[1] + "." + b64url("not an rsa signature"), http.StatusUnauthorized},
		{"HS256 header, signature of another token", "Bearer " + parts[0] + "." + parts[1] + "." + strings.Split(signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.ID = "x" })), ".")[2], http.StatusUnauthorized},
		{"wrong key under the right kid", "Bearer " + signClaims(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123456789"), kid, base), http.StatusUnauthorized},
		{"right key, unknown kid", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, "0123456789ab", base), http.StatusUnauthorized},
		{"right key, no kid", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, "", base), http.StatusUnauthorized},
		{"wrong issuer", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Issuer = "evil" })), http.StatusUnauthorized},
		{"no issuer", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Issuer = "" })), http.StatusUnauthorized},
		{"wrong audience", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} })), http.StatusUnauthorized},
		{"no audience", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Audience = nil })), http.StatusUnauthorized},
		{"expired", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = at(-2*time.Hour), at(-2*time.Hour), at(-time.Hour)
		})), http.StatusUnauthorized},
		{"expired beyond the leeway", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = at(-16*time.Minute), at(-16*time.Minute), at(-time.Minute)
		})), http.StatusUnauthorized},
		{"not valid before the future", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.NotBefore = at(time.Hour) })), http.StatusUnauthorized},
		{"issued in the future", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.IssuedAt = at(time.Hour) })), http.StatusUnauthorized},
		{"no exp", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.ExpiresAt = nil })), http.StatusUnauthorized},
		{"session id not a UUID", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Sid = "all" })), http.StatusUnauthorized},
		{"another session id", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Sid = uuid.NewString() })), http.StatusUnauthorized},
		{"another user in the session", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Subject = uuid.NewString() })), http.StatusUnauthorized},
		{"another org", "Bearer " + signClaims(t, jwt.SigningMethodHS256, key, kid, with(func(c *auth.Claims) { c.Org = uuid.NewString() })), http.StatusUnauthorized},
		{"tampered payload", "Bearer " + parts[0] + "." + tamperRole(t, parts[1]) + "." + parts[2], http.StatusUnauthorized},
		{"malformed string", "Bearer not-a-jwt", http.StatusUnauthorized},
		{"three garbage segments", "Bearer a.b.c", http.StatusUnauthorized},
		{"missing Bearer prefix", s.Access, http.StatusUnauthorized},
		{"Basic scheme", "Basic " + b64url("rep1@demo.test:"+demo.Password), http.StatusUnauthorized},
		{"Bearer with no token", "Bearer ", http.StatusUnauthorized},
		{"no Authorization header", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/me", Header: h})
			if tt.want == http.StatusOK {
				apitest.Expect(t, res, http.StatusOK)
				return
			}
			expectProblem(t, res, tt.want, "unauthorized")
		})
	}
}

// tamperRole rewrites a token's payload to claim the admin role.
func tamperRole(t *testing.T, payload string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["role"] = "admin"
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(out)
}

func TestAccessTokenExpiresWithTheClock(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")
	env.Clock.Advance(14 * time.Minute)
	apitest.Expect(t, getMe(env, s.Access), http.StatusOK)
	env.Clock.Advance(2 * time.Minute)
	p := expectProblem(t, getMe(env, s.Access), http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(p.Detail, "expired") {
		t.Errorf("detail %q, want it to say the token expired", p.Detail)
	}
	// The refresh token still works and gives a fresh access token.
	res := tryRefresh(env, s.Refresh)
	apitest.Expect(t, res, http.StatusOK)
	var next tokenPair
	res.JSON(t, &next)
	apitest.Expect(t, getMe(env, next.AccessToken), http.StatusOK)
}

func TestPreviousSecretStillVerifies(t *testing.T) {
	const newSecret = "the-new-secret-the-new-secret-0123456789"
	const unlisted = "an-unlisted-secret-an-unlisted-secret-01"
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		tokens, err := auth.NewTokens(newSecret, []string{apitest.Secret}, d.Now)
		if err != nil {
			t.Fatal(err)
		}
		d.Tokens = tokens
	}})
	s := env.Login("rep1@demo.test")
	c := claimsOf(t, s.Access)

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"issued under the new secret", s.Access, http.StatusOK},
		{"signed with the previous secret", signClaims(t, jwt.SigningMethodHS256, []byte(apitest.Secret), auth.KeyID(apitest.Secret), c), http.StatusOK},
		{"signed with an unlisted secret", signClaims(t, jwt.SigningMethodHS256, []byte(unlisted), auth.KeyID(unlisted), c), http.StatusUnauthorized},
		{"unlisted secret under the previous kid", signClaims(t, jwt.SigningMethodHS256, []byte(unlisted), auth.KeyID(apitest.Secret), c), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := getMe(env, tt.token)
			if tt.want == http.StatusOK {
				apitest.Expect(t, res, http.StatusOK)
				return
			}
			expectProblem(t, res, tt.want, "unauthorized")
		})
	}
	if h, _, err := jwt.NewParser().ParseUnverified(s.Access, &auth.Claims{}); err != nil || h.Header["kid"] != auth.KeyID(newSecret) {
		t.Errorf("issued token kid = %v, want the new secret's %q", h.Header["kid"], auth.KeyID(newSecret))
	}
}

func TestDeactivationEndsAccessAtOnce(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	rep := env.Login("rep1@demo.test")
	repOther := env.Login("rep1@demo.test")
	teammate := env.Login("rep2@demo.test")
	apitest.Expect(t, getMe(env, rep.Access), http.StatusOK)

	res := env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + rep.UserID.String(), Token: admin.Access,
		Body: map[string]any{"active": false}})
	apitest.Expect(t, res, http.StatusOK)

	for _, s := range []apitest.Session{rep, repOther} {
		expectProblem(t, getMe(env, s.Access), http.StatusUnauthorized, "unauthorized")
		expectProblem(t, tryRefresh(env, s.Refresh), http.StatusUnauthorized, "unauthorized")
	}
	expectProblem(t, tryLogin(env, "rep1@demo.test", demo.Password, nil), http.StatusUnauthorized, "unauthorized")
	apitest.Expect(t, getMe(env, teammate.Access), http.StatusOK)

	// Reactivation lets them log in again; old sessions stay ended.
	res = env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + rep.UserID.String(), Token: admin.Access,
		Body: map[string]any{"active": true}})
	apitest.Expect(t, res, http.StatusOK)
	expectProblem(t, getMe(env, rep.Access), http.StatusUnauthorized, "unauthorized")
	apitest.Expect(t, tryLogin(env, "rep1@demo.test", demo.Password, nil), http.StatusOK)
}

// TestLoginLimitHoldsUnderParallelGuessing sends many wrong passwords for
// one email at once. Each attempt is counted before the password is hashed,
// so no more than the limit reach the hash and the rest are refused.
func TestLoginLimitHoldsUnderParallelGuessing(t *testing.T) {
	const limit, tries = 5, 30
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		d.LoginPolicy = auth.LoginPolicy{PairFree: limit, EmailFree: 100, BaseDelay: time.Minute, MaxDelay: time.Minute, Forget: time.Hour}
	}})
	statuses := make(chan int, tries)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses <- tryLogin(env, "rep1@demo.test", "wrong-password-1", nil).StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusUnauthorized] > limit || count[http.StatusTooManyRequests] != tries-count[http.StatusUnauthorized] {
		t.Fatalf("statuses %v: want at most %d × 401 and the rest 429", count, limit)
	}
}
