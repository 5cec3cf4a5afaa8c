package api

import (
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
)

type loginRequest struct {
	Email      string `json:"email"`
	Password   string `json:"password"`
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
	Platform   string `json:"platform"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    int     `json:"expires_in"`
	User         userDTO `json:"user"`
}

var errBadLogin = models.Errorf(models.CodeUnauthorized, "email or password is wrong")

// login exchanges email and password for tokens bound to one device.
// Unknown emails, wrong passwords and deactivated users get the same answer
// after the same password-hashing work, so the answer reveals nothing about accounts.
func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	email := models.NormalizeEmail(req.Email)
	var fields []models.FieldError
	if email == "" {
		fields = append(fields, models.FieldError{Field: "email", Code: models.CodeInvalid, Message: "is required"})
	}
	if req.Password == "" {
		fields = append(fields, models.FieldError{Field: "password", Code: models.CodeInvalid, Message: "is required"})
	}
	deviceID, err := parseUUID("device_id", req.DeviceID)
	if err != nil {
		fields = append(fields, models.FieldError{Field: "device_id", Code: models.CodeInvalid, Message: "must be a UUID the app generated at install"})
	}
	if utf8.RuneCountInString(strings.TrimSpace(req.DeviceName)) > models.MaxNameLen {
		fields = append(fields, models.FieldError{Field: "device_name", Code: models.CodeInvalid, Message: "must be at most 200 characters"})
	}
	switch req.Platform {
	case "", "android", "ios", "web":
	default:
		fields = append(fields, models.FieldError{Field: "platform", Code: models.CodeInvalid, Message: "must be android, ios or web"})
	}
	if len(fields) > 0 {
		return models.Invalid(fields)
	}

	// The attempt is counted before the password is hashed (see
	// auth.LoginGuard); a successful one takes its count back.
	attempt, wait := s.logins.Begin(email, c.RealIP())
	if attempt == nil {
		return rateLimited(wait)
	}

	ctx := c.Request().Context()
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil && models.ErrorCode(err) != models.CodeNotFound {
		attempt.Aborted()
		return err
	}
	hash := u.PasswordHash // empty when unknown: Check then burns equal time
	ok, stale := s.passwords.Check(hash, req.Password)
	if !ok || !u.Active {
		return errBadLogin
	}
	attempt.Succeeded()
	if stale {
		s.rehash(c, u, req.Password)
	}

	now := s.now().UTC()
	sess := models.Session{
		OrgID: u.OrgID, ID: uuid.New(), UserID: u.ID, DeviceID: deviceID,
		DeviceName: strings.TrimSpace(req.DeviceName), Platform: req.Platform,
		CreatedAt: now, ExpiresAt: now.Add(auth.RefreshTTL),
	}
	refresh, refreshHash := auth.NewRefreshToken()
	if err := s.store.CreateSession(ctx, sess, refreshHash); err != nil {
		return err
	}
	return s.issue(c, u, sess, refresh)
}

// rehash replaces a bcrypt hash, or an argon2id hash of other costs, by one
// at the current costs, now that the password is known. A failure costs
// only the upgrade, so it is logged and the login goes on.
func (s *Server) rehash(c echo.Context, u models.User, pw string) {
	next, err := s.passwords.Hash(pw)
	if err == nil {
		err = s.store.ReplacePasswordHash(c.Request().Context(), u.OrgID, u.ID, u.PasswordHash, next)
	}
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "upgrade password hash", "user", u.ID, "err", err)
	}
}

func rateLimited(wait time.Duration) error {
	err := models.Errorf(models.CodeRateLimited, "too many failed logins; try again later")
	err.RetryAfterSeconds = max(1, int(math.Ceil(wait.Seconds())))
	return err
}

func (s *Server) issue(c echo.Context, u models.User, sess models.Session, refresh string) error {
	access, ttl, err := s.tokens.Issue(u, sess)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeJSON(c, http.StatusOK, tokenResponse{
		AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: ttl, User: fullUser(u),
	})
}

// refresh rotates a refresh token. A token used twice revokes its session.
func (s *Server) refresh(c echo.Context) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return models.FieldInvalid("refresh_token", "is required")
	}
	next, nextHash := auth.NewRefreshToken()
	sess, u, err := s.store.RotateRefresh(c.Request().Context(), auth.HashRefreshToken(req.RefreshToken), nextHash,
		s.now().Add(auth.RefreshTTL))
	if err != nil {
		return err
	}
	return s.issue(c, u, sess, next)
}

// logout revokes the caller's session: its refresh token and every access
// token naming it stop working.
func (s *Server) logout(c echo.Context) error {
	p := principal(c)
	if err := s.store.RevokeSession(c.Request().Context(), p.OrgID, p.SessionID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
