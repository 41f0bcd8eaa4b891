"""Former name of :mod:`priorgnn.fetch`, kept so that older imports keep working; import ``priorgnn.fetch``."""

from priorgnn.fetch import (  # noqa: F401 - re-exported
    USER_AGENT,
    cli_logging,
    download,
    looks_like_html,
    manifest_entry,
    read_manifest,
    run_cli,
    safe_extract_zip,
    update_manifest,
    utc_now,
)
