package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/config"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// startNotifications picks the push sender from the configuration, logs
// which it is, and runs the dispatcher and the follow-up reminder job until
// ctx ends. stop waits for them to finish (a batch being sent completes).
// report is told what each dispatch batch did (metrics).
func startNotifications(ctx context.Context, cfg config.Config, db *store.DB, eng *engine.Engine, log *slog.Logger, report func(notifications.Stats)) (stop func(), err error) {
	sender, describe, err := notifications.NewSender(ctx, notifications.Settings{
		CredentialsFile: cfg.FirebaseCredentialsFile, ProjectID: cfg.FirebaseProjectID, Endpoint: cfg.FCMEndpoint,
	}, log)
	if err != nil {
		return nil, err
	}
	log.Info("push notifications", describe...)
	d := notifications.NewDispatcher(db.Outbox(), sender, notifications.Options{Logger: log, Report: report})
	followUps := &notifications.FollowUps{
		Orgs: db.People().OrgIDs,
		Notify: func(ctx context.Context, org uuid.UUID, from, to time.Time) (int, error) {
			return sales.NotifyFollowUps(ctx, eng, org, from, to)
		},
		Now: time.Now, Log: log, Lookback: sales.FollowUpLookback,
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.Run(ctx) }()
	go func() { defer wg.Done(); notifications.Every(ctx, time.Minute, log, "follow-ups", followUps.Run) }()
	return func() { cancel(); wg.Wait() }, nil
}
