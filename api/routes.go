package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// routes lists the whole HTTP surface in one place. openapi.yaml describes
// exactly these routes; TestSpecMatchesRoutes keeps the two in step.
func (s *Server) routes(e *echo.Echo) {
	e.Pre(s.securityHeaders, s.corsPreflight)
	e.Use(withRequestID, s.accessLog, recoverPanics, s.limitBody, s.deadline)

	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/readyz", s.readyz)
	e.GET("/openapi.yaml", s.openapi)

	e.POST("/v1/auth/login", s.login)
	e.POST("/v1/auth/refresh", s.refresh)

	// Auth is per route, not group middleware: a group with middleware makes
	// Echo answer every unknown /v1 path and wrong method with that
	// middleware (401) instead of 404 and 405.
	v1 := e.Group("/v1")
	authed := s.requireAuth
	v1.POST("/auth/logout", s.logout, authed)
	v1.GET("/me", s.me, authed)
	v1.GET("/users", s.listUsers, authed)
	v1.POST("/users", s.createUser, authed, s.idempotent)
	v1.GET("/users/:id", s.getUser, authed)
	v1.PATCH("/users/:id", s.patchUser, authed)
	v1.GET("/users/:id/export", s.exportUser, authed)
	v1.DELETE("/users/:id/personal-data", s.erasePersonalData, authed)
	v1.GET("/teams", s.listTeams, authed)
	v1.POST("/teams", s.createTeam, authed, s.idempotent)
	v1.GET("/org", s.getOrg, authed)
	v1.PATCH("/org", s.patchOrg, authed)

	// The push routes are listed in pushRoutes: their deadline is
	// pushTimeout.
	v1.POST("/sync/push", s.push, authed)
	v1.GET("/sync/pull", s.pull, authed)
	v1.GET("/sync/conflicts", s.conflicts, authed)
	v1.GET("/sync/rejections", s.rejections, authed)
	v1.GET("/sync/watermelondb", s.watermelonPull, authed)
	v1.POST("/sync/watermelondb", s.watermelonPush, authed)

	v1.GET("/contests", s.listContests, authed)
	v1.POST("/contests", s.createContest, authed, s.idempotent)
	v1.GET("/contests/:id", s.getContest, authed)
	v1.PATCH("/contests/:id", s.patchContest, authed)
	v1.GET("/contests/:id/standings", s.contestStandings, authed)
	v1.GET("/contests/:id/score-entries", s.contestScoreEntries, authed)
	v1.GET("/reports/productivity", s.productivity, authed)
	v1.GET("/audit", s.listAudit, authed)
	v1.POST("/visits/:id/order-value/approve", s.approveOrderValue, authed, s.idempotent)
	v1.POST("/visits/:id/order-value/reject", s.rejectOrderValue, authed, s.idempotent)

	v1.PUT("/devices/current/push-token", s.putPushToken, authed)
	v1.DELETE("/devices/current/push-token", s.deletePushToken, authed)
	v1.GET("/me/notification-preferences", s.getNotificationPrefs, authed)
	v1.PUT("/me/notification-preferences", s.putNotificationPrefs, authed)
	v1.GET("/notifications", s.listNotifications, authed)
	v1.POST("/notifications/:id/read", s.readNotification, authed, s.idempotent)
}

// pushRoutes are the routes whose deadline is the push timeout, by method
// and path as Echo names them; every other route has the request timeout.
var pushRoutes = map[[2]string]bool{
	{http.MethodPost, "/v1/sync/push"}:         true,
	{http.MethodPost, "/v1/sync/watermelondb"}: true,
}

func (s *Server) healthz(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ok", "version": s.version})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.ready(c.Request().Context()); err != nil {
		var me *models.Error
		if !errors.As(err, &me) {
			s.log.WarnContext(c.Request().Context(), "not ready", "err", err)
			return models.ErrUnavailable
		}
		return err
	}
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", s.spec)
}
