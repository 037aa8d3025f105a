"""The RSP PKI (SGP.22 v2.x section 4.5): test PKI issuance, credential loading, chain verification.

Modules: ``roles`` (id-rspRole OIDs), ``eid`` (EID check digits), ``issue`` (test certificates and
``init_pki``), ``verify`` (eUICC and SM-DP+ chain checks, typed errors), ``store`` (PKI manifests),
``tls`` (ssl contexts for the DPtls certificate).
"""
