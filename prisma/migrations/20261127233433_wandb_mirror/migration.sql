-- CreateTable
CREATE TABLE "WandbOutbox" (
    "id" BIGSERIAL NOT NULL,
    "key" TEXT NOT NULL,
    "sweepId" TEXT NOT NULL,
    "trialId" TEXT,
    "kind" TEXT NOT NULL,
    "step" INTEGER,
    "payload" JSONB NOT NULL,
    "revision" INTEGER NOT NULL DEFAULT 0,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deliveredAt" TIMESTAMP(3),
    "failedAt" TIMESTAMP(3),
    "lastError" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WandbOutbox_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "WandbRun" (
    "trialId" TEXT NOT NULL,
    "runId" TEXT NOT NULL,
    "entity" TEXT,
    "project" TEXT,
    "sweepName" TEXT,
    "url" TEXT,
    "leaseOwner" TEXT,
    "leaseUntil" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WandbRun_pkey" PRIMARY KEY ("trialId")
);

-- CreateTable
CREATE TABLE "WandbSweep" (
    "sweepId" TEXT NOT NULL,
    "wandbSweepId" TEXT,
    "entity" TEXT,
    "project" TEXT,
    "url" TEXT,
    "leaseOwner" TEXT,
    "leaseUntil" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WandbSweep_pkey" PRIMARY KEY ("sweepId")
);

-- CreateIndex
CREATE UNIQUE INDEX "WandbOutbox_key_key" ON "WandbOutbox"("key");

-- CreateIndex
CREATE INDEX "WandbOutbox_sweepId_deliveredAt_idx" ON "WandbOutbox"("sweepId", "deliveredAt");

-- CreateIndex
CREATE INDEX "WandbOutbox_trialId_deliveredAt_idx" ON "WandbOutbox"("trialId", "deliveredAt");

-- CreateIndex
CREATE UNIQUE INDEX "WandbOutbox_trialId_step_key" ON "WandbOutbox"("trialId", "step");

-- AddForeignKey
ALTER TABLE "WandbOutbox" ADD CONSTRAINT "WandbOutbox_sweepId_fkey" FOREIGN KEY ("sweepId") REFERENCES "Sweep"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "WandbOutbox" ADD CONSTRAINT "WandbOutbox_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "WandbRun" ADD CONSTRAINT "WandbRun_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "WandbSweep" ADD CONSTRAINT "WandbSweep_sweepId_fkey" FOREIGN KEY ("sweepId") REFERENCES "Sweep"("id") ON DELETE CASCADE ON UPDATE CASCADE;
