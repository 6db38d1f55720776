# neuralrg-gpu in a container: builds the release binary, then runs it on the host's GPU through
# Vulkan, or on lavapipe (Mesa's CPU Vulkan driver, installed below) when the container sees no
# GPU. README.md, "Headless and cloud GPUs", says which host packages each vendor needs.
#
#   docker build -t neuralrg-gpu .
#   docker run --rm --gpus all neuralrg-gpu info              # NVIDIA, through the NVIDIA Container Toolkit
#   docker run --rm --device /dev/dri neuralrg-gpu info       # AMD or Intel, through Mesa (RADV, ANV)
#   docker run --rm neuralrg-gpu info                         # no GPU: lavapipe
#   docker run --rm --gpus all -v "$PWD/runs:/work/runs" -v neuralrg-cache:/root/.cache \
#       neuralrg-gpu train --lattice 32
#
# The second volume keeps the driver's compiled-shader cache between containers: GPU drivers
# then skip compiling a flow shape's kernels after its first run; lavapipe caches part of the
# work (README.md, "Set-up").

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY shaders shaders
# The plot font, embedded in the binary (tests/packaging.rs checks that everything the release
# build embeds is copied here).
COPY assets assets
RUN cargo build --release --locked

FROM debian:bookworm-slim
# libvulkan1: the Vulkan loader, which finds the GPU driver's ICD (mounted from the host on
# NVIDIA; in mesa-vulkan-drivers for AMD and Intel) and lavapipe.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/neuralrg-gpu /usr/local/bin/neuralrg-gpu
# The NVIDIA Container Toolkit mounts the driver's Vulkan ICD only for the graphics capability.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
WORKDIR /work
ENTRYPOINT ["neuralrg-gpu"]
CMD ["info"]
