# Placeholder: FetchAction=Identifiers is being written.
