//! HALO point-of-care (PoC) side: what an EMR embeds to launch SMART apps.
