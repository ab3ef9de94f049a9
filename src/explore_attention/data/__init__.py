"""Task generators and loaders of data that ships with packages. Import submodules directly."""
