-- +goose Up
-- An order value above the organisation's ceiling (in cents; by default
-- 1,000,000 of its currency) is flagged suspicious with reason
-- order_value and scores nothing until a manager approves it.
ALTER TABLE orgs ADD COLUMN order_value_ceiling INTEGER NOT NULL DEFAULT 100000000;
ALTER TABLE visits ADD COLUMN suspicious_reason TEXT;
ALTER TABLE visits ADD COLUMN order_value_review TEXT;

-- +goose Down
ALTER TABLE visits DROP COLUMN order_value_review;
ALTER TABLE visits DROP COLUMN suspicious_reason;
ALTER TABLE orgs DROP COLUMN order_value_ceiling;
