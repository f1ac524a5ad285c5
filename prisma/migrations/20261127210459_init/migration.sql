-- CreateEnum
CREATE TYPE "TrialStatus" AS ENUM ('queued', 'running', 'finished', 'failed', 'diverged', 'stopped', 'cancelled');

-- CreateEnum
CREATE TYPE "MetricGoal" AS ENUM ('minimize', 'maximize');

-- CreateEnum
CREATE TYPE "ArtifactKind" AS ENUM ('checkpoint', 'model', 'predictions');

-- CreateTable
CREATE TABLE "Sweep" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "spec" JSONB NOT NULL,
    "metricName" TEXT NOT NULL,
    "metricGoal" "MetricGoal" NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'active',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Sweep_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Trial" (
    "id" TEXT NOT NULL,
    "sweepId" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "params" JSONB NOT NULL,
    "seed" INTEGER NOT NULL,
    "status" "TrialStatus" NOT NULL DEFAULT 'queued',
    "worker" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "backend" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "heartbeatAt" TIMESTAMP(3),
    "bestMetric" DOUBLE PRECISION,
    "summary" JSONB,

    CONSTRAINT "Trial_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "MetricPoint" (
    "trialId" TEXT NOT NULL,
    "phase" TEXT NOT NULL,
    "epoch" INTEGER NOT NULL,
    "key" TEXT NOT NULL,
    "value" DOUBLE PRECISION NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "MetricPoint_pkey" PRIMARY KEY ("trialId","phase","epoch","key")
);

-- CreateTable
CREATE TABLE "Artifact" (
    "id" TEXT NOT NULL,
    "trialId" TEXT NOT NULL,
    "kind" "ArtifactKind" NOT NULL,
    "path" TEXT NOT NULL,
    "phase" TEXT,
    "epoch" INTEGER,
    "bytes" INTEGER,
    "sha256" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Artifact_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Ensemble" (
    "id" TEXT NOT NULL,
    "sweepId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "k" INTEGER NOT NULL,
    "metric" TEXT NOT NULL,
    "path" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Ensemble_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "EnsembleMember" (
    "ensembleId" TEXT NOT NULL,
    "trialId" TEXT NOT NULL,
    "rank" INTEGER NOT NULL,
    "weight" DOUBLE PRECISION NOT NULL DEFAULT 1,

    CONSTRAINT "EnsembleMember_pkey" PRIMARY KEY ("ensembleId","trialId")
);

-- CreateIndex
CREATE UNIQUE INDEX "Sweep_name_key" ON "Sweep"("name");

-- CreateIndex
CREATE INDEX "Trial_sweepId_status_idx" ON "Trial"("sweepId", "status");

-- CreateIndex
CREATE INDEX "Trial_status_heartbeatAt_idx" ON "Trial"("status", "heartbeatAt");

-- CreateIndex
CREATE INDEX "Artifact_trialId_kind_idx" ON "Artifact"("trialId", "kind");

-- CreateIndex
CREATE UNIQUE INDEX "Ensemble_sweepId_name_key" ON "Ensemble"("sweepId", "name");

-- CreateIndex
CREATE INDEX "EnsembleMember_trialId_idx" ON "EnsembleMember"("trialId");

-- AddForeignKey
ALTER TABLE "Trial" ADD CONSTRAINT "Trial_sweepId_fkey" FOREIGN KEY ("sweepId") REFERENCES "Sweep"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "MetricPoint" ADD CONSTRAINT "MetricPoint_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Artifact" ADD CONSTRAINT "Artifact_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Ensemble" ADD CONSTRAINT "Ensemble_sweepId_fkey" FOREIGN KEY ("sweepId") REFERENCES "Sweep"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "EnsembleMember" ADD CONSTRAINT "EnsembleMember_ensembleId_fkey" FOREIGN KEY ("ensembleId") REFERENCES "Ensemble"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "EnsembleMember" ADD CONSTRAINT "EnsembleMember_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;
