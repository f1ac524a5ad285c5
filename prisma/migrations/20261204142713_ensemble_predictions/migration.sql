-- AlterTable
ALTER TABLE "Ensemble" ADD COLUMN     "pool" INTEGER,
ADD COLUMN     "summary" JSONB;

-- CreateTable
CREATE TABLE "PredictionDataset" (
    "id" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "files" JSONB NOT NULL,
    "labels" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PredictionDataset_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TrialPredictions" (
    "trialId" TEXT NOT NULL,
    "split" TEXT NOT NULL,
    "datasetId" TEXT NOT NULL,
    "length" INTEGER NOT NULL,
    "classes" INTEGER NOT NULL,
    "encoding" TEXT NOT NULL,
    "data" BYTEA NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "TrialPredictions_pkey" PRIMARY KEY ("trialId","split")
);

-- CreateIndex
CREATE INDEX "TrialPredictions_datasetId_idx" ON "TrialPredictions"("datasetId");

-- AddForeignKey
ALTER TABLE "TrialPredictions" ADD CONSTRAINT "TrialPredictions_trialId_fkey" FOREIGN KEY ("trialId") REFERENCES "Trial"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TrialPredictions" ADD CONSTRAINT "TrialPredictions_datasetId_fkey" FOREIGN KEY ("datasetId") REFERENCES "PredictionDataset"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
