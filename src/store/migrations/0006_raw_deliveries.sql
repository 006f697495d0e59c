-- Webhook deliveries are kept as the bytes GitHub signed. JSON allows a NUL
-- (`\u0000`) that neither jsonb nor text can hold: such a delivery could not
-- be stored, so it was answered 500 and lost. Rows stored before keep their
-- jsonb payload and stay readable; new rows have the body instead.
ALTER TABLE webhook_deliveries ADD COLUMN body bytea;
ALTER TABLE webhook_deliveries ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_body_or_payload
  CHECK (body IS NOT NULL OR payload IS NOT NULL);
