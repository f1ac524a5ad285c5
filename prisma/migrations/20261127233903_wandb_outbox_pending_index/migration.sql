-- DropIndex
DROP INDEX "WandbOutbox_trialId_deliveredAt_idx";

-- CreateIndex
CREATE INDEX "WandbOutbox_deliveredAt_idx" ON "WandbOutbox"("deliveredAt");
