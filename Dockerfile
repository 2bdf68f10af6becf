# overlay-flannel — the image whose filesystem becomes the managed plugin's rootfs.
#
# Build context: this repository after `npm ci && npm run build` (dist/ and node_modules/ present).
# Dev dependencies are pruned inside the image from package-lock.json by scripts/prune-dev.js,
# which needs only node (no npm, no network), so BASE may be any image with node 20 at
# /usr/local/bin/node — the official one, or a local one made with `docker import` (offline lab).
# Works with the classic builder of Docker 20.10 (no BuildKit features used).
#
#   docker build -t overlay-flannel-rootfs .            (or: npm run plugin:build -- --dockerfile)
#   id=$(docker create overlay-flannel-rootfs)
#   mkdir -p plugin/build/rootfs && docker export "$id" | tar -x -C plugin/build/rootfs && docker rm "$id"
#   cp plugin/config.json plugin/build/ && docker plugin create overlay-flannel plugin/build
ARG BASE=node:20-bookworm-slim
FROM ${BASE}
WORKDIR /app
ENV NODE_ENV=production \
    PLUGIN_SOCKET=/run/docker/plugins/overlay-flannel.sock
COPY package.json package-lock.json ./
COPY node_modules/ ./node_modules/
COPY scripts/prune-dev.js /tmp/prune-dev.js
RUN ["/usr/local/bin/node", "/tmp/prune-dev.js", "/app", "--slim", "--self-delete"]
# Mount points of plugin/config.json (its mounts and its propagatedMount, STATE_DIR) and the folder of the plugin socket.
RUN ["/usr/local/bin/node", "-e", "for (const d of ['/run/docker/plugins', '/host/etc', '/host/root', '/host/run/docker/plugins', '/var/lib/overlay-flannel']) require('fs').mkdirSync(d, { recursive: true })"]
COPY dist/ ./dist/
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/main.js"]
