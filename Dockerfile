# syntax=docker/dockerfile:1
# The Vestibule image: `docker build -t vestibule:0.1.0 .`
#
# Stage 1 builds the `dist` profile (whole-program optimised) with the Rust toolchain; stage 2
# is distroless: glibc, libgcc, CA certificates and /etc/passwd's `nonroot` (65532), no shell,
# no package manager. Vestibule writes nothing to disk, so the image runs with a read-only root
# filesystem, as non-root, with every capability dropped (deploy/base listens on 8080/8443).
#
# Without a registry (no base image to pull), deploy/image.sh builds the equivalent image from
# a binary built on the host; .ci/deploy-image.sh tests that one.

# The toolchain the repository is tested with (rust-version in Cargo.toml is the minimum).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist --bin vestibule \
    && cp target/dist/vestibule /vestibule

# cc: the binary links glibc and libgcc_s dynamically (`ldd target/dist/vestibule`).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /vestibule /vestibule
USER 65532:65532
# 8080/8443: traffic (deploy/base); 9000: admin (probes; keep it off the Service).
EXPOSE 8080 8443 9000
ENTRYPOINT ["/vestibule"]
