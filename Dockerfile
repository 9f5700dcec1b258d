# meshguard container image. Multi-stage: TypeScript is compiled in a build stage; the runtime stage is
# distroless (Node.js and its libraries only: no shell, no package manager) with the production
# dependencies, the compiled dist/ and the entry point, and runs as a numeric non-root user.
#
#   docker build -t <registry>/meshguard:<tag> .
#   docker push <registry>/meshguard:<tag>
#
# Both base images are pinned by digest, so a rebuild gets the same bases. The digests were taken from
# the registries' published manifests; no registry is reachable from the machines this project is
# developed on, so refresh them where you build (`docker buildx imagetools inspect node:24-bookworm-slim`,
# `... gcr.io/distroless/nodejs24-debian12`) and keep the major version equal to the `node@24`
# devDependency the tests run on. test/deploy/image.test.ts checks the pins and the runtime stage.

ARG BUILD_IMAGE=node:24-bookworm-slim@sha256:a0b9bf06e4e6193cf7a0f58816cc935ff8c2a908f81e6f1a95432d679c54fbfd
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12@sha256:b35a10df56aa17825e81e836ff70fe3c27002809dd94e6bfd655ed05bac52230

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM ${BUILD_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Runtime: no RUN here (there is no shell to run it with).
FROM ${RUNTIME_IMAGE}
ENV NODE_ENV=production
# A smaller young generation: at 50k pods the serving process settles at ~360 MB RSS instead of ~510 MB
# with no measurable latency change (BENCHMARKS.md).
ENV NODE_OPTIONS=--max-semi-space-size=8
# glibc malloc: blocks of 32 KiB and more get their own mappings, returned to the system when freed (the
# zones V8's compiler threads allocate otherwise stay resident in their arenas: 45-60 MB at 50k pods).
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=32768
WORKDIR /app
# package.json is needed at runtime: "type": "module" makes dist/*.js ES modules.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# A numeric user, so that the kubelet can verify runAsNonRoot (deploy/ sets the same ids).
USER 10001:10001
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "bin/meshguard.js"]
CMD ["serve", "--port", "8443", "--metrics-port", "9090"]
