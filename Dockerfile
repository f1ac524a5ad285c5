# GPU worker image. @tensorflow/tfjs-node-gpu 4.22.0 is built against CUDA 11.2 and cuDNN 8.1,
# so the image starts from the matching CUDA runtime; its install downloads libtensorflow and
# needs internet access at build time.
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg build-essential python3 redis-tools postgresql-client \
 && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /work
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY native/kernels.cc native/build.mjs ./native/
RUN npm ci --no-audit --no-fund \
 && npm install --no-save --no-audit --no-fund @tensorflow/tfjs-node-gpu@4.22.0
COPY . .
# The sources arrive after npm ci, whose postinstall therefore compiled nothing: compile them now.
RUN node bin/dist.mjs --strict

ENV NODE_ENV=production
CMD ["node", "bin/sweep.mjs", "worker", "--backend", "tensorflow-gpu"]
