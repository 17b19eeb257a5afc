# The image the Helm chart deploys: shapebridge and shapebridge-cli on Debian bookworm.
#   docker build -t shapebridge:0.1.0 .
# Build stage: the same packages and build as ops/test (ops/lib/common.sh).
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN apt-get update -qq \
 && bash -c 'source ops/lib/common.sh && sb_ensure_deps' \
 && cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHAPEBRIDGE_FUZZER_DIR= \
 && cmake --build /build -j"$(nproc)" --target shapebridge shapebridge-cli \
 && strip /build/bridge/app/shapebridge /build/clients/cli/shapebridge-cli \
 # The runtime packages are the ones that own the libraries the binaries load (dpkg knows a
 # file under /lib or /usr/lib, whichever its package installed it to).
 && for lib in $(ldd /build/bridge/app/shapebridge /build/clients/cli/shapebridge-cli \
                 | awk '/=> \// {print $3}' | xargs -r readlink -f | sort -u); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null \
        || dpkg -S "/usr$lib" 2>/dev/null || { echo "no package owns $lib" >&2; exit 1; }; \
    done > /build/library-owners \
 && cut -d: -f1 /build/library-owners | sort -u > /build/runtime-packages

# Runtime stage: the binaries, their libraries, a non-root user (10001, as the chart runs it).
FROM debian:bookworm-slim
COPY --from=build /build/runtime-packages /tmp/runtime-packages
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --gid 10001 shapebridge \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin shapebridge \
 && mkdir -p /var/lib/shapebridge && chown 10001:10001 /var/lib/shapebridge
COPY --from=build /build/bridge/app/shapebridge /build/clients/cli/shapebridge-cli /usr/local/bin/
USER 10001:10001
EXPOSE 7070 7071
ENTRYPOINT ["/usr/local/bin/shapebridge"]
CMD ["serve", "--config", "/etc/shapebridge/config/shapebridge.yaml"]
