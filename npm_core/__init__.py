"""NPM Explorer core: data, models, training, fitting, mesh extraction, metrics. Never imports the viewer or polyscope."""
