"""Operations that span the whole pipeline: reconciliation and running the platform locally."""
