# syntax=docker/dockerfile:1
# tunebot's image. TARGET=cpu (the default): Node 24 on Debian slim. TARGET=cuda: the CUDA 12 and
# cuDNN 9 runtime on Ubuntu, with onnxruntime-node's CUDA 12 provider (run it with --gpus all).
#   docker build -t tunebot .
#   docker build --build-arg TARGET=cuda -t tunebot:cuda .
#   docker run -p 127.0.0.1:8080:8080 -v tunebot-data:/data tunebot
# Models and the SQLite file live on the /data volume. The local chat makes everyone who reaches
# it an admin: publish its port on loopback only, as above. .ci/image-steps.sh runs these steps
# outside Docker in CI.
ARG TARGET=cpu
ARG NODE_IMAGE=node:24-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS node

# Dependencies, without install scripts whatever npm's version: none is needed (better-sqlite3
# brings prebuilt binaries in its package), and onnxruntime-node's fetches what deps-cuda asks for.
FROM node AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts

FROM deps AS deps-cpu

# onnxruntime-node's install script fetches the CUDA 12 provider libraries into its bin folder,
# where tunebot looks for them; a failed download fails the build.
FROM deps AS deps-cuda
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
RUN node node_modules/onnxruntime-node/script/install.js \
    && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

# The TypeScript build, then the dev dependencies pruned away, and the Node that npm installs for
# hosts without Node 24 (package.json's optionalDependencies): the image runs its own.
FROM deps-${TARGET} AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
    && npm prune --omit=dev \
    && rm -rf node_modules/.bin/node node_modules/node-linux-*

FROM node AS runtime-cpu

FROM ${CUDA_IMAGE} AS runtime-cuda
COPY --from=node /usr/local/bin/node /usr/local/bin/node

FROM runtime-${TARGET}
ENV NODE_ENV=production \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
    TUNEBOT_MODEL_DIR=/data/models \
    TUNEBOT_STORAGE_URL=sqlite:///data/tunebot.db \
    TUNEBOT_LOCAL_HOST=0.0.0.0 \
    TUNEBOT_LOCAL_PORT=8080
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home tunebot \
    && mkdir -p /data \
    && chown tunebot:tunebot /data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
USER tunebot
VOLUME ["/data"]
EXPOSE 8080
# The first start makes a model and fine-tunes it before it serves: minutes on a small CPU.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((response) => process.exit(response.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM finishes the replies in flight (up to 30 s) and checkpoints a running fine-tune.
STOPSIGNAL SIGTERM
CMD ["node", "bin/tunebot.js", "start"]
