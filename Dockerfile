# faultline in a container, for sweeps on a batch engine (docs/sweeping.md).
# Build: docker build -t faultline:0.1.0 .
# The build stage compiles with the repository's .cargo/config.toml, which switches madsim into
# simulation mode (`--cfg madsim`); RUSTFLAGS must stay unset, as it would replace that setting.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN unset RUSTFLAGS && cargo build --release --locked --bin faultline

FROM debian:bookworm-slim
COPY --from=build /src/target/release/faultline /usr/local/bin/faultline
COPY scenarios /opt/faultline/scenarios
WORKDIR /opt/faultline
ENTRYPOINT []
CMD ["faultline", "--help"]
