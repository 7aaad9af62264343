"""NPM Explorer desktop app (Polyscope + ImGui)."""
