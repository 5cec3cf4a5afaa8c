-- +goose Up
-- sync_mutations remembers what each processed mutation of a device was
-- (its record and clock), so that a mutation at or below the device's
-- last_seq is told apart: the same mutation again is a retry (duplicate);
-- another one means the device's counter went back (seq_reused).
CREATE TABLE sync_mutations (
    org_id      uuid NOT NULL,
    user_id     uuid NOT NULL,
    device_id   uuid NOT NULL,
    seq         bigint NOT NULL,
    entity      text NOT NULL,
    record_id   uuid NOT NULL,
    hlc_ms      bigint NOT NULL,
    hlc_counter bigint NOT NULL,
    PRIMARY KEY (org_id, user_id, device_id, seq)
);
-- Devices that pushed before the log existed: their seqs below
-- seq_log_from cannot be told apart and stay duplicates.
ALTER TABLE sync_devices ADD COLUMN seq_log_from bigint NOT NULL DEFAULT 1;
UPDATE sync_devices SET seq_log_from = last_seq + 1;

-- +goose Down
ALTER TABLE sync_devices DROP COLUMN seq_log_from;
DROP TABLE sync_mutations;
