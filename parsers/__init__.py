"""Email -> structured purchase: unwrap, classify, parser chain, normalize."""
