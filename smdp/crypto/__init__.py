"""Crypto layer: SGP.22 ECDSA (ecdsa), ECKA + X9.63 KDF (kdf), BSP/SCP03t (bsp), hashCc (cc),
encryption at rest (sealed) and the per-download CPU floor (floor)."""
