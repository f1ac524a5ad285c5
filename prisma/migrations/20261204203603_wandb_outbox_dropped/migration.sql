-- AlterTable
ALTER TABLE "WandbOutbox" ADD COLUMN     "droppedAt" TIMESTAMP(3);
